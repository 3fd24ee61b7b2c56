#!/usr/bin/env escript
%%! -pa erlang/_build/default/lib/erlang_python/ebin
%% The main demo: starts erlang_python and shows calls, eval, exec, types, errors,
%% calls that do not wait, refs and channels, a virtual environment, and a
%% process-isolated context surviving a segfault.
-mode(compile).

main(_) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    {ok, Version} = py:version(),
    io:format("Python ~s~nmode: ~p, executors: ~p~n~n", [Version, py:execution_mode(), py:num_executors()]),
    parallel_step(),
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
    io:format("~nobjects by reference, and a channel into running Python:~n"),
    {ok, D} = py:call(py:context(1), collections, deque, [[1, 2]], #{return => ref}),
    show("py:call(py:context(1), collections, deque, [[1, 2]], #{return => ref})", {ok, D}),
    show("py:call_method(D, appendleft, [0]), py:to_term(D)", begin {ok, _} = py:call_method(D, appendleft, [0]), py:to_term(D) end),
    ok = py:exec(py:context(1), <<"def total(ch):\n    return sum(ch)\n">>),
    {ok, Ch} = py:channel(),
    Self = self(),
    spawn(fun() -> Self ! {total, py:call(py:context(1), '__main__', total, [Ch])} end),
    [ok = py:channel_send(Ch, I) || I <- lists:seq(1, 100)],
    ok = py:channel_close(Ch),
    show("sum(ch) in Python over 1..100 sent with py:channel_send", receive {total, Total} -> Total end),
    venv_step(),
    isolation_step(),
    ok = application:stop(erlang_python).

%% What the project is for: CPU-bound Python on every core. The same pure-Python
%% work, one call after another on one context, then with py:parallel over all
%% the contexts, timed.
parallel_step() ->
    io:format("the main job: CPU-bound Python on every core~n"),
    ok = py:exec(py:context(1), <<"def burn(n):\n    s = 0\n    for i in range(n):\n        s += i * i\n    return s\n">>),
    Contexts = py_context_router:contexts(),
    [ok = py:exec(C, <<"def burn(n):\n    s = 0\n    for i in range(n):\n        s += i * i\n    return s\n">>) || C <- Contexts],
    K = length(Contexts),
    N = 2000000,
    Calls = [{'__main__', burn, [N]} || _ <- Contexts],
    {Seq, _} = timer:tc(fun() -> [{ok, _} = py:call(py:context(1), '__main__', burn, [N]) || _ <- Calls] end),
    {Par, {ok, Rs}} = timer:tc(fun() -> py:parallel(Calls) end),
    true = lists:all(fun({ok, _}) -> true; (_) -> false end, Rs),
    io:format("  ~p x burn(~p) one after another on one context: ~p ms~n"
              "  the same with py:parallel over ~p contexts:      ~p ms  (~.2fx faster)~n",
              [K, N, Seq div 1000, K, Par div 1000, Seq / Par]),
    case py:execution_mode() of
        multi_executor ->
            io:format("  this Python shares one GIL between contexts (multi_executor): no parallel speed-up.~n"
                      "  For contexts that run in parallel, build a CPython 3.13 (sub-interpreters) or 3.13t~n"
                      "  (free-threaded) and run the demo with it:~n"
                      "    make python-3.13 && PYTHON=$(scripts/python-build 3.13 | tail -1) make demo~n");
        _ ->
            ok
    end,
    io:format("~n").

%% A context whose interpreter runs in a child OS process: a segfault in C code
%% ends that child only, and the context answers again.
isolation_step() ->
    io:format("~na process-isolated context (isolation => process):~n"),
    {ok, [Ctx]} = py_context_router:start_pool(demo_isolated, #{contexts => 1, isolation => process}),
    show("py:call(Ctx, os, getpid, [])  (not the node's OS pid " ++ os:getpid() ++ ")", py:call(Ctx, os, getpid, [])),
    show("py:call(Ctx, ctypes, string_at, [0])  (reads address 0: a segfault)", py:call(Ctx, ctypes, string_at, [0])),
    show("py:eval(Ctx, <<\"1 + 1\">>)  (a new child answers)", py:eval(Ctx, <<"1 + 1">>)),
    ok = py_context_router:stop_pool(demo_isolated).

%% A virtual environment made with the linked Python, and a package installed
%% into it from a wheel built here (no network), used from a context.
venv_step() ->
    io:format("~na virtual environment:~n"),
    Dir = filename:join(["_build", "demo"]),
    Wheels = filename:join(Dir, "wheels"),
    ok = filelib:ensure_dir(filename:join(Wheels, "x")),
    ok = py:exec(py:context(main), <<"
import zipfile, os, base64, hashlib
def demo_wheel(d):
    name, version = 'demo_greeting', '1.0'
    info = name + '-' + version + '.dist-info/'
    files = {name + '/__init__.py': 'def hello(who):\\n    return \"hello from a venv, \" + who\\n',
             info + 'METADATA': 'Metadata-Version: 2.1\\nName: ' + name + '\\nVersion: ' + version + '\\n',
             info + 'WHEEL': 'Wheel-Version: 1.0\\nGenerator: demo\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n'}
    record = []
    fn = os.path.join(d, name + '-' + version + '-py3-none-any.whl')
    with zipfile.ZipFile(fn, 'w') as z:
        for path, text in files.items():
            data = text.encode()
            h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()
            record.append(path + ',sha256=' + h + ',' + str(len(data)))
            z.writestr(path, data)
        record.append(info + 'RECORD,,')
        z.writestr(info + 'RECORD', '\\n'.join(record) + '\\n')
">>),
    {ok, none} = py:call(py:context(main), '__main__', demo_wheel, [list_to_binary(Wheels)]),
    {ok, V} = py:eval(<<"'%d.%d' % __import__('sys').version_info[:2]">>),
    Venv = filename:absname(filename:join(Dir, "venv-" ++ binary_to_list(V))),
    show("py:ensure_venv(\"_build/demo/venv\", [\"demo_greeting\"], #{install_args => [\"--no-index\", ...]})",
         py:ensure_venv(Venv, ["demo_greeting"], #{install_args => ["--no-index", "--find-links", filename:absname(Wheels)]})),
    show("py:call(demo_greeting, hello, [<<\"erlang\">>])", py:call(demo_greeting, hello, [<<"erlang">>])),
    ok = py:deactivate_venv().

show(What, Result) ->
    io:format("  ~s~n    -> ~p~n", [What, Result]).
