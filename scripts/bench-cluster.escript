#!/usr/bin/env escript
%%! -pa erlang/_build/default/lib/erlang_python/ebin
%% make bench-cluster: py_cluster over 1, 2 and 3 nodes of this machine.
%%
%% CPU-bound rows: the same batch of pure-Python calls (~0.2 s each) run with
%% py_cluster:parallel/1 on a cluster of 1, 2 and 3 nodes (this one, then peers
%% started with OTP's `peer' module, each with 2 contexts), next to the same
%% calls one after the other in one native Python process and spread over a
%% native multiprocessing pool of one process per core, all in this run. Every
%% node runs on the same machine, so the ceiling is its number of cores, not
%% the number of nodes.
%%
%% Per-call rows: a remote trivial call (py_cluster:call/4 to a peer) next to
%% erpc:call/4 of an Erlang function on the same peer and a local py:call/3.
%% Medians of 5 runs.
-mode(compile).

-define(RUNS, 5).
-define(DIR, "/tmp/ep_bench_cluster").
-define(BURN, "def burn(n):\n    s = 0\n    for i in range(n):\n        s += i * i\n    return s\n").

main(_) ->
    _ = os:cmd("epmd -daemon"),
    {ok, _} = net_kernel:start([list_to_atom("ep_bench_" ++ os:getpid()), shortnames]),
    ok = filelib:ensure_dir(?DIR ++ "/"),
    ok = file:write_file(?DIR ++ "/epburn.py", ?BURN),
    configure(node()),
    {ok, _} = application:ensure_all_started(erlang_python),
    {ok, Version} = py:version(),
    Cores = erlang:system_info(logical_processors_available),
    io:format("Python ~s, mode ~p, ~p cores~n~n", [hd(string:split(Version, " ")), py:execution_mode(), Cores]),
    %% calibrate to about 0.2 s per call
    {T0, {ok, _}} = timer:tc(fun() -> py:call(epburn, burn, [1000000]) end),
    N = max(100000, round(1000000 * 200000 / T0)),
    Calls = [{epburn, burn, [N]} || _ <- lists:seq(1, 12)],
    One = batch(Calls),
    P1 = start_peer(),
    Two = batch(Calls),
    P2 = start_peer(),
    Three = batch(Calls),
    {NSeq, NPool} = native(N, length(Calls), Cores),
    Peer = hd(py_cluster:nodes() -- [node()]),
    Rows =
        [{"batch", io_lib:format("12 calls of ~~0.2 s (burn(~p))", [N]), ""},
         {"one native Python process, one call after the other", secs(NSeq), "1.00x"},
         {io_lib:format("native multiprocessing pool of ~p processes", [Cores]), secs(NPool), speedup(NSeq, NPool)},
         {"py_cluster:parallel, 1 node (this one, 2 contexts)", secs(One), speedup(NSeq, One)},
         {"py_cluster:parallel, 2 nodes", secs(Two), speedup(NSeq, Two)},
         {"py_cluster:parallel, 3 nodes", secs(Three), speedup(NSeq, Three)},
         {"ceiling on this machine (cores)", "", io_lib:format("~p.00x", [Cores])}
         | per_call(Peer)],
    io:format("| py_cluster | value | next to |~n|---|---|---|~n"),
    [io:format("| ~s | ~s | ~s |~n", [K, V, Next]) || {K, V, Next} <- Rows],
    [peer:stop(P) || P <- [P1, P2]],
    ok = application:stop(erlang_python),
    halt(0).

configure(Node) ->
    ok = erpc:call(Node, application, set_env, [erlang_python, python_path, [?DIR]]),
    ok = erpc:call(Node, application, set_env, [erlang_python, num_contexts, 2]).

start_peer() ->
    Before = length(py_cluster:nodes()),
    Ebin = filename:absname("erlang/_build/default/lib/erlang_python/ebin"),
    {ok, Peer, Node} = peer:start(#{name => peer:random_name(ep_bench), args => ["-pa", Ebin],
                                   wait_boot => 60000}),
    configure(Node),
    {ok, _} = erpc:call(Node, application, ensure_all_started, [erlang_python], 120000),
    wait(fun() -> length(py_cluster:nodes()) > Before end),
    Peer.

wait(F) ->
    case F() of
        true -> ok;
        false -> timer:sleep(10), wait(F)
    end.

%% Median wall time of the batch, in microseconds.
batch(Calls) ->
    median([element(1, timer:tc(fun() ->
                {ok, Rs} = py_cluster:parallel(Calls),
                [] = [R || R <- Rs, element(1, R) =/= ok]
            end)) || _ <- lists:seq(1, ?RUNS)]).

%% The same calls in native Python: one process in sequence, then a pool.
native(N, Count, Cores) ->
    {ok, PyBin} = file:read_file("erlang/priv/python.txt"),
    Py = string:trim(binary_to_list(PyBin)),
    Script = "import sys, time, multiprocessing\nsys.path.insert(0, '" ++ ?DIR ++ "')\n"
             "from epburn import burn\n"
             "if __name__ == '__main__':\n"
             "    n, count, cores = " ++ io_lib:format("~p, ~p, ~p", [N, Count, Cores]) ++ "\n"
             "    t0 = time.time()\n"
             "    for _ in range(count): burn(n)\n"
             "    t1 = time.time()\n"
             "    with multiprocessing.Pool(cores) as pool:\n"
             "        t2 = time.time()\n"
             "        pool.map(burn, [n] * count, chunksize=1)\n"
             "        t3 = time.time()\n"
             "    print(t1 - t0, t3 - t2)\n",
    File = ?DIR ++ "/native.py",
    ok = file:write_file(File, Script),
    Runs = [begin
                [A, B] = string:lexemes(os:cmd(Py ++ " " ++ File), " \n"),
                {list_to_float(A) * 1.0e6, list_to_float(B) * 1.0e6}
            end || _ <- lists:seq(1, 3)],
    {median([A || {A, _} <- Runs]), median([B || {_, B} <- Runs])}.

per_call(Peer) ->
    K = 2000,
    Erpc = us(fun() -> loop(K, fun() -> 1 = erpc:call(Peer, erlang, abs, [-1]) end) end, K),
    Remote = us(fun() -> loop(K, fun() -> {ok, 3} = py_cluster:call(Peer, operator, add, [1, 2]) end) end, K),
    Local = us(fun() -> loop(K, fun() -> {ok, 3} = py:call(operator, add, [1, 2]) end) end, K),
    [{"erpc:call(Peer, erlang, abs, [-1]) (floor)", io_lib:format("~.1f us", [Erpc]), ""},
     {"py_cluster:call(Peer, operator, add, [1, 2])", io_lib:format("~.1f us", [Remote]),
      io_lib:format("~.2fx the erpc floor", [Remote / Erpc])},
     {"py:call(operator, add, [1, 2]) on this node", io_lib:format("~.1f us", [Local]), ""}].

us(F, K) ->
    F(),
    median([element(1, timer:tc(F)) / K || _ <- lists:seq(1, ?RUNS)]).

loop(0, _) -> ok;
loop(K, F) -> F(), loop(K - 1, F).

secs(Us) -> io_lib:format("~.2f s", [Us / 1.0e6]).
speedup(Base, T) -> io_lib:format("~.2fx", [Base / T]).

median(L) -> lists:nth((length(L) + 1) div 2, lists:sort(L)).
