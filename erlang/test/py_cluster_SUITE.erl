%% py_cluster: discovery through pg, remote calls and their errors, parallel
%% over every node, a node killed with calls in flight, overload and timeouts on
%% a remote node. The other nodes are peers started by OTP's `peer' module on
%% this machine, each running the application on the same build.
-module(py_cluster_SUITE).
-include_lib("common_test/include/ct.hrl").
-export([all/0, init_per_suite/1, end_per_suite/1]).
-export([discovery/1, remote_call/1, remote_errors/1, terms_cross/1,
         parallel_every_node/1, nodedown_in_flight/1, remote_overload/1,
         timeout_interrupts_remote/1, caller_death_cancels_remote/1]).

all() ->
    [discovery, remote_call, remote_errors, terms_cross, parallel_every_node,
     remote_overload, timeout_interrupts_remote, caller_death_cancels_remote,
     nodedown_in_flight].

init_per_suite(Config) ->
    Started = case node() of
                  nonode@nohost ->
                      _ = os:cmd("epmd -daemon"),
                      Name = list_to_atom("py_cluster_ct_" ++ os:getpid()),
                      {ok, _} = net_kernel:start([Name, shortnames]),
                      true;
                  _ ->
                      false
              end,
    py_test_util:start_app(Config, #{contexts => 2}),
    {PeerA, A} = start_peer(peer:random_name(py_a), 2),
    {PeerB, B} = start_peer(peer:random_name(py_b), 1),
    ok = py_test_util:wait_until(fun() -> py_cluster:nodes() =:= lists:sort([node(), A, B]) end),
    [{dist_started, Started}, {a, A}, {b, B}, {peers, [PeerA, PeerB]} | Config].

end_per_suite(Config) ->
    [catch peer:stop(P) || P <- ?config(peers, Config)],
    py_test_util:stop_app(),
    case ?config(dist_started, Config) of
        true -> net_kernel:stop();
        false -> ok
    end,
    ok.

%% A node running the application with `Contexts' contexts.
start_peer(Name, Contexts) ->
    Paths = lists:usort([filename:dirname(code:which(M)) || M <- [py_cluster, py_test_util]]),
    {ok, Peer, Node} = peer:start(#{name => Name, args => lists:append([["-pa", P] || P <- Paths]),
                                   wait_boot => 60000}),
    ok = erpc:call(Node, application, set_env, [erlang_python, num_contexts, Contexts]),
    {ok, _} = erpc:call(Node, application, ensure_all_started, [erlang_python], 120000),
    {Peer, Node}.

%% The nodes running the application are found, a node whose application stops
%% leaves, and comes back when it starts again.
discovery(Config) ->
    A = ?config(a, Config),
    B = ?config(b, Config),
    [_, _, _] = Nodes = py_cluster:nodes(),
    true = lists:member(node(), Nodes) andalso lists:member(A, Nodes) andalso lists:member(B, Nodes),
    %% the peers see the same cluster
    ok = py_test_util:wait_until(fun() -> erpc:call(A, py_cluster, nodes, []) =:= Nodes end),
    ok = erpc:call(B, application, stop, [erlang_python]),
    ok = py_test_util:wait_until(fun() -> py_cluster:nodes() =:= lists:sort([node(), A]) end),
    %% connected, code loaded, application stopped: not running
    {error, {not_running, B}} = py_cluster:call(B, operator, add, [1, 2]),
    {ok, _} = erpc:call(B, application, ensure_all_started, [erlang_python], 120000),
    ok = py_test_util:wait_until(fun() -> py_cluster:nodes() =:= lists:sort([node(), A, B]) end),
    {ok, 3} = py_cluster:call(B, operator, add, [1, 2]).

%% A remote call returns what py:call returns there: with kwargs, in a given
%% context of the remote node, on the local node too.
remote_call(Config) ->
    A = ?config(a, Config),
    {ok, 3} = py_cluster:call(A, operator, add, [1, 2]),
    {ok, <<"a-b">>} = py_cluster:call(A, builtins, <<"str.join">>, [<<"-">>, [<<"a">>, <<"b">>]]),
    {ok, 8} = py_cluster:call(A, builtins, pow, [2, 3], #{kwargs => #{}}),
    {ok, 5} = py_cluster:call(A, builtins, int, [<<"101">>], #{kwargs => #{base => 2}}),
    %% it ran on A: A's OS process
    Pid = list_to_integer(erpc:call(A, os, getpid, [])),
    {ok, Pid} = py_cluster:call(A, os, getpid, []),
    {ok, Pid} = py_cluster:call(A, os, getpid, [], #{context => 2}),
    {ok, Pid} = py_cluster:call(A, os, getpid, [], #{context => main}),
    %% a name set in A's context 1 is seen there, not in context 2
    ok = erpc:call(A, py, exec, [py:context(1), <<"cluster_probe = 41">>]),
    {ok, 42} = py_cluster:call(A, builtins, eval, [<<"cluster_probe + 1">>], #{context => 1}),
    {error, {'NameError', _}} = py_cluster:call(A, builtins, eval, [<<"cluster_probe">>], #{context => 2}),
    %% the local node
    Own = list_to_integer(os:getpid()),
    {ok, Own} = py_cluster:call(node(), os, getpid, []).

%% Errors come back as they do locally; nodes without the application, bad
%% options and unknown contexts are clear errors.
remote_errors(Config) ->
    A = ?config(a, Config),
    {error, {'ZeroDivisionError', _}} = py_cluster:call(A, operator, truediv, [1, 0]),
    {error, {'ModuleNotFoundError', _}} = py_cluster:call(A, no_such_module_here, f, []),
    {error, {not_running, 'nobody@nohost'}} = py_cluster:call('nobody@nohost', operator, add, [1, 2]),
    {error, {bad_argument, _}} = py_cluster:call(A, operator, add, [1, 2], #{timeout => -1}),
    {error, {bad_argument, _}} = py_cluster:call(A, operator, add, not_a_list),
    {error, {no_pool, nopool}} = py_cluster:call(A, operator, add, [1, 2], #{context => nopool}),
    %% SystemExit in the remote Python is an error, and the node stays up
    {error, {'SystemExit', _}} = py_cluster:call(A, sys, exit, [3]),
    {ok, 2} = py_cluster:call(A, operator, add, [1, 1]).

%% Terms cross as distributed Erlang carries them: a pid stays a pid on the
%% remote Python side, and erlang.send from there reaches this process.
terms_cross(Config) ->
    A = ?config(a, Config),
    Self = self(),
    {ok, Self} = py_cluster:call(A, copy, copy, [Self]),
    {ok, true} = py_cluster:call(A, builtins, eval,
                                 [<<"isinstance(p, __import__('erlang').Pid)">>, #{<<"p">> => Self}]),
    Term = {self(), [1.5, <<"bin">>, #{<<"k">> => true}], -(1 bsl 70)},
    %% as locally, a reference cannot cross to Python
    {error, {bad_argument, _}} = py_cluster:call(A, copy, copy, [make_ref()]),
    {ok, Back} = py_cluster:call(A, builtins, tuple, [tuple_to_list(Term)]),
    Term = Back,
    {ok, none} = py_cluster:call(A, erlang, send, [self(), {<<"hello">>, 42, self()}]),
    receive {<<"hello">>, 42, Self} -> ok after 10000 -> ct:fail(no_message_from_remote_python) end.

%% parallel: every node gets calls, in proportion to its contexts (here 2, 2,
%% 1), the results come back in input order, one failure hides nothing.
parallel_every_node(Config) ->
    A = ?config(a, Config),
    B = ?config(b, Config),
    OsPid = fun(N) -> list_to_integer(erpc:call(N, os, getpid, [])) end,
    {ok, Pids} = py_cluster:parallel([{os, getpid, []} || _ <- lists:seq(1, 10)]),
    Count = fun(N) -> length([x || {ok, P} <- Pids, P =:= OsPid(N)]) end,
    {4, 4, 2} = {Count(node()), Count(A), Count(B)},
    %% fewer calls than contexts still reach every node
    {ok, Three} = py_cluster:parallel([{os, getpid, []} || _ <- lists:seq(1, 3)]),
    [] = [OsPid(N) || N <- [node(), A, B]] -- [P || {ok, P} <- Three],
    Calls = [case I of 7 -> {operator, truediv, [1, 0]}; _ -> {operator, mul, [I, 3]} end
             || I <- lists:seq(1, 25)],
    {ok, Results} = py_cluster:parallel(Calls),
    25 = length(Results),
    {error, {'ZeroDivisionError', _}} = lists:nth(7, Results),
    [] = [{I, R} || {I, R} <- lists:enumerate(Results), I =/= 7, R =/= {ok, I * 3}],
    {ok, []} = py_cluster:parallel([]).

%% A node killed (SIGKILL) with calls in flight answers each of them
%% {error, {nodedown, Node}} at once, far before their timeout; when it comes
%% back it is used again.
nodedown_in_flight(_Config) ->
    Name = peer:random_name(py_c),
    {Peer, C} = start_peer(Name, 2),
    ok = py_test_util:wait_until(fun() -> lists:member(C, py_cluster:nodes()) end),
    Self = self(),
    Callers = [spawn_link(fun() ->
                   Self ! {done, self(), py_cluster:call(C, time, sleep, [600], #{timeout => 900000})}
               end) || _ <- lists:seq(1, 3)],
    ok = py_test_util:wait_until(fun() -> erpc:call(C, py_semaphore, current, []) >= 3 end),
    %% calls that block on C only (every node gets some of the batch)
    OsPid = erpc:call(C, os, getpid, []),
    Block = iolist_to_binary(["import os, time\nif os.getpid() == ", OsPid, ": time.sleep(600)\n"]),
    Parallel = spawn_link(fun() ->
                   Self ! {done, self(), py_cluster:parallel([{builtins, exec, [Block]} || _ <- lists:seq(1, 7)])}
               end),
    ok = py_test_util:wait_until(fun() -> erpc:call(C, py_semaphore, current, []) >= 5 end),
    _ = os:cmd("kill -9 " ++ OsPid),
    [receive {done, P, R} -> {error, {nodedown, C}} = R end || P <- Callers],
    {ok, Results} = receive {done, Parallel, PR} -> PR end,
    %% C's share (2 of the 7 contexts) failed with nodedown, every other call succeeded
    2 = length([x || {error, {nodedown, N}} <- Results, N =:= C]),
    [] = [X || X <- Results, X =/= {ok, none}, X =/= {error, {nodedown, C}}],
    catch peer:stop(Peer),
    ok = py_test_util:wait_until(fun() -> not lists:member(C, py_cluster:nodes()) end),
    {error, {not_running, C}} = py_cluster:call(C, operator, add, [1, 2]),
    %% the same node name comes back and is used again
    {Peer2, C} = start_peer(Name, 1),
    ok = py_test_util:wait_until(fun() -> lists:member(C, py_cluster:nodes()) end),
    {ok, 3} = py_cluster:call(C, operator, add, [1, 2]),
    peer:stop(Peer2).

%% The remote node's semaphore answers overloaded, as it would locally.
remote_overload(Config) ->
    A = ?config(a, Config),
    Max = erpc:call(A, py_semaphore, max_concurrent, []),
    ok = erpc:call(A, py_semaphore, set_max_concurrent, [1]),
    ok = erpc:call(A, application, set_env, [erlang_python, overload_wait, 100]),
    try
        Gate = filename:join(?config(priv_dir, Config), "overload-gate"),
        Code = iolist_to_binary(["import os, time\nwhile not os.path.exists(r'", Gate, "'):\n"
                                 "    time.sleep(0.005)\n"]),
        Self = self(),
        Holder = spawn_link(fun() -> Self ! {held, py_cluster:call(A, builtins, exec, [Code])} end),
        ok = py_test_util:wait_until(fun() -> erpc:call(A, py_semaphore, current, []) =:= 1 end),
        {error, {overloaded, 1, 1}} = py_cluster:call(A, operator, add, [1, 2]),
        ok = file:write_file(Gate, <<>>),
        receive {held, {ok, none}} -> ok end,
        unlink(Holder),
        {ok, 3} = py_cluster:call(A, operator, add, [1, 2])
    after
        erpc:call(A, py_semaphore, set_max_concurrent, [Max]),
        erpc:call(A, application, unset_env, [erlang_python, overload_wait])
    end.

%% The caller's timeout interrupts the remote Python: its permit comes back
%% long before the Python would have ended.
timeout_interrupts_remote(Config) ->
    A = ?config(a, Config),
    0 = erpc:call(A, py_semaphore, current, []),
    {error, timeout} = py_cluster:call(A, builtins, exec,
                                       [<<"import time\nfor _ in range(60000): time.sleep(0.001)">>],
                                       #{timeout => 300}),
    %% a minute of Python, interrupted: the permit is free well within 20 s
    ok = py_test_util:wait_until(fun() -> erpc:call(A, py_semaphore, current, []) =:= 0 end, 20000),
    {ok, 3} = py_cluster:call(A, operator, add, [1, 2]).

%% A caller that dies cancels its remote call.
caller_death_cancels_remote(Config) ->
    A = ?config(a, Config),
    0 = erpc:call(A, py_semaphore, current, []),
    Caller = spawn(fun() ->
                      py_cluster:call(A, builtins, exec,
                                      [<<"import time\nfor _ in range(60000): time.sleep(0.001)">>],
                                      #{timeout => infinity})
                   end),
    ok = py_test_util:wait_until(fun() -> erpc:call(A, py_semaphore, current, []) =:= 1 end),
    exit(Caller, kill),
    ok = py_test_util:wait_until(fun() -> erpc:call(A, py_semaphore, current, []) =:= 0 end, 20000),
    {ok, 3} = py_cluster:call(A, operator, add, [1, 2]).
