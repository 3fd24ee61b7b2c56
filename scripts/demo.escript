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
    show("py:eval(<<\"{1, 2}\">>)", py:eval(<<"{1, 2}">>)),
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
    ok = application:stop(erlang_python).

show(What, Result) ->
    io:format("  ~s~n    -> ~p~n", [What, Result]).
