#!/usr/bin/env escript
%% The main demo: starts erlang_python and shows calls, eval, exec, types, errors.
%%! -pa erlang/_build/default/lib/erlang_python/ebin
-mode(compile).

main(_) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    {ok, Version} = py:version(),
    io:format("Python ~s~nmode: ~p, executors: ~p~n~n", [Version, py:execution_mode(), py:num_executors()]),
    show("py:call(math, sqrt, [16])", py:call(math, sqrt, [16])),
    show("py:call(json, dumps, [#{name => <<\"ada\">>, tags => [1, 2.5, none]}], #{sort_keys => true})",
         py:call(json, dumps, [#{name => <<"ada">>, tags => [1, 2.5, none]}], #{sort_keys => true})),
    show("py:eval(\"1 + 1\")", py:eval("1 + 1")),
    show("py:eval(<<\"x * y\">>, #{x => 6, y => 7})", py:eval(<<"x * y">>, #{x => 6, y => 7})),
    show("py:exec(<<\"def greet(n): return f'hello {n}'\">>)", py:exec(<<"def greet(n): return f'hello {n}'">>)),
    show("py:call('__main__', greet, [<<\"erlang\">>])", py:call('__main__', greet, [<<"erlang">>])),
    io:format("~ntypes, Erlang -> Python -> Erlang:~n"),
    [show(io_lib:format("~p", [T]), py:call(copy, deepcopy, [T]))
     || T <- [1 bsl 100, 3.25, <<"héllo"/utf8>>, [1, [2, {3, 4}]], #{<<"k">> => #{<<"n">> => true}}, self()]],
    show("py:eval(<<\"[float('nan'), float('inf'), b'raw', None]\">>)",
         py:eval(<<"[float('nan'), float('inf'), b'raw', None]">>)),
    io:format("~nerrors are values, the VM stays up:~n"),
    show("py:eval(<<\"1/0\">>)", py:eval(<<"1/0">>)),
    show("py:call(math, sqrt, [make_ref()])", py:call(math, sqrt, [make_ref()])),
    show("py:call(sys, exit, [1])", py:call(sys, exit, [1])),
    show("py:eval(<<\"complex(1, 2)\">>)", py:eval(<<"complex(1, 2)">>)),
    show("py:eval(<<\"__import__('os').fork()\">>)", py:eval(<<"__import__('os').fork()">>)),
    show("py:call(time, sleep, [1], #{}, 100)", py:call(time, sleep, [1], #{}, 100)),
    %% a runaway loop: the timeout stops it, the context answers the next call at once
    show("py:call(builtins, exec, [<<\"while True: pass\">>], #{}, 100)",
         py:call(builtins, exec, [<<"while True: pass">>], #{}, 100)),
    show("py:eval(<<\"'still serving'\">>)", py:eval(<<"'still serving'">>)),
    show("py:call(no_such_module, f, [])", py:call(no_such_module, f, [])),
    ok = py:exec(<<"def fails():\n    raise ValueError('with a traceback')">>),
    py:call('__main__', fails, []),
    {ok, Tb} = py:last_traceback(),
    io:format("  py:last_traceback() ->~n~s~n", [Tb]),
    io:format("~ncalls that do not wait:~n"),
    Ref = py:spawn_call(math, factorial, [20]),
    show("py:await(py:spawn_call(math, factorial, [20]))", py:await(Ref)),
    show("py:stream_eval(<<\"(x * x for x in range(5))\">>)", py:stream_eval(<<"(x * x for x in range(5))">>)),
    {ok, S} = py:stream_start(builtins, range, [3]),
    Chunks = fun Loop(Acc) -> receive {py_chunk, S, X} -> Loop([X | Acc]); {py_end, S} -> lists:reverse(Acc) end end([]),
    show("py:stream_start(builtins, range, [3]), then {py_chunk, Ref, X}... {py_end, Ref}", Chunks),
    ok = py:exec(<<"import asyncio\nasync def nap(n):\n    await asyncio.sleep(0.2)\n    return n\n">>),
    T0 = erlang:monotonic_time(millisecond),
    Gathered = py:async_gather([{'__main__', nap, [I]} || I <- lists:seq(1, 50)]),
    io:format("  py:async_gather of 50 coroutines sleeping 0.2 s each~n    -> ~p results in ~p ms~n",
              [length(element(2, Gathered)), erlang:monotonic_time(millisecond) - T0]),
    ok = application:stop(erlang_python).

show(What, Result) ->
    io:format("  ~s~n    -> ~p~n", [What, Result]).
