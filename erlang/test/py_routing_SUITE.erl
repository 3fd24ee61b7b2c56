%% Routing by the router: placement with load in view, stickiness, bindings,
%% pools, modules learned to need the main interpreter, and no trace left by
%% processes that exit.
-module(py_routing_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-compile([export_all, nowarn_export_all]).

all() ->
    [new_processes_use_every_context, placement_sticks_exec_then_call, placement_counts_load,
     exited_processes_leave_nothing, million_short_lived_callers,
     bind_to_context_main_and_pool, pool_lifecycle, pool_placement_spreads,
     pool_survives_default_restart, unknown_pool, parallel_uses_distinct_contexts,
     refused_module_routes_to_main, real_refusal_ctypes, back_to_back_routes_follow_changes].

init_per_suite(Config) ->
    py_test_util:start_app(Config).

end_per_suite(_Config) ->
    py_test_util:stop_app().

init_per_testcase(_, Config) ->
    {ok, _} = py_context_router:start(#{contexts => 8}),
    Config.

end_per_testcase(_, _Config) ->
    [ok = py_context_router:stop_pool(P) || P <- maps:keys(py_context_router:pools())],
    ok.

%% Processes spawned by one process, on whatever scheduler: with 8 contexts on
%% this machine's schedulers, 64 of them use all 8 (each is placed on the least
%% loaded context while the others are still alive).
new_processes_use_every_context(_) ->
    Self = self(),
    Pids = [spawn_link(fun() ->
                {ok, 2} = py:eval(<<"1 + 1">>),
                Self ! {placed, self(), py:context()},
                receive release -> ok end
            end) || _ <- lists:seq(1, 64)],
    Ctxs = [receive {placed, P, C} -> C end || P <- Pids],
    [P ! release || P <- Pids],
    Counts = lists:foldl(fun(C, M) -> maps:update_with(C, fun(N) -> N + 1 end, 1, M) end, #{}, Ctxs),
    ?assertEqual(lists:sort(py_context_router:contexts()), lists:sort(maps:keys(Counts))),
    %% a context's load is its processes plus their requests in flight, so the
    %% shares are near 8 each, not exactly
    ct:pal("processes per context: ~p", [Counts]),
    ?assert(lists:max(maps:values(Counts)) =< 16).

%% A process keeps its context: names its exec defines are there for its calls,
%% and every later request goes to the same context.
placement_sticks_exec_then_call(_) ->
    Self = self(),
    Pids = [spawn_link(fun() ->
                Name = <<"g_", (integer_to_binary(I))/binary>>,
                ok = py:exec(<<"def ", Name/binary, "(x):\n    return x * ", (integer_to_binary(I))/binary, "\n">>),
                First = py:context(),
                R = [py:call('__main__', Name, [J]) || J <- lists:seq(1, 5)],
                Same = lists:all(fun(_) -> py:context() =:= First end, lists:seq(1, 20)),
                Self ! {done, self(), I, R, Same}
            end) || I <- lists:seq(1, 100)],
    [receive {done, P, I, R, Same} ->
         ?assertEqual([{ok, I * J} || J <- lists:seq(1, 5)], R),
         ?assert(Same)
     end || {P, I} <- lists:zip(Pids, lists:seq(1, 100))].

%% Placement weighs the work queued too: a process placed while one context is
%% busy avoids it.
placement_counts_load(_) ->
    case maps:get(contexts, py:load()) of
        [] -> {skip, "contexts are namespaces of the executors: no load of their own"};
        _ -> check_placement_counts_load()
    end.

check_placement_counts_load() ->
    %% every context is equally placed (no process), but context 1 is busy
    Busy = spawn_link(fun() -> py:eval(py:context(1), <<"__import__('time').sleep(3)">>) end),
    ok = py_test_util:wait_until(fun() ->
             [C1 | _] = [C || C <- maps:get(contexts, py:load()), maps:get(id, C) =:= 1],
             maps:get(in_flight, C1) > 0
         end, 5000),
    Self = self(),
    [spawn_link(fun() -> Self ! {ctx, py:context()}, receive stop -> ok end end) || _ <- lists:seq(1, 7)],
    Got = [receive {ctx, C} -> C end || _ <- lists:seq(1, 7)],
    ?assertNot(lists:member(py:context(1), Got)),
    ?assertEqual(7, length(lists:usort(Got))),
    unlink(Busy).

%% A process that exits leaves no binding and no placement behind.
exited_processes_leave_nothing(_) ->
    Before = routed_processes(),
    Self = self(),
    Pids = [spawn(fun() ->
                _ = py:context(),
                case I rem 2 of
                    0 -> ok = py_context_router:bind_context(py:context(1));
                    1 -> ok
                end,
                Self ! {ready, self()},
                receive stop -> ok end
            end) || I <- lists:seq(1, 50)],
    [receive {ready, P} -> ok end || P <- Pids],
    ?assert(routed_processes() >= Before + 50),
    [exit(P, kill) || P <- Pids],
    ok = wait_routed_at_most(Before).

%% A million short-lived callers, each placed: the placement map ends as it was
%% (empty of them).
million_short_lived_callers(_) ->
    Before = routed_processes(),
    N = 1000000,
    Batch = 2000,
    Self = self(),
    lists:foreach(fun(_) ->
        Pids = [spawn(fun() -> {py_context, _} = py:context(), Self ! {placed, self()} end)
                || _ <- lists:seq(1, Batch)],
        [receive {placed, P} -> ok end || P <- Pids]
    end, lists:seq(1, N div Batch)),
    ok = wait_routed_at_most(Before),
    %% routing still works and still spreads
    {ok, 2} = py:eval(<<"1 + 1">>).

bind_to_context_main_and_pool(_) ->
    {ok, PoolCtxs} = py_context_router:start_pool(io, #{contexts => 2}),
    ok = py:exec(py:context(main), <<"where = 'main'">>),
    ok = py:exec(py:context(3), <<"where = 'three'">>),
    [ok = py:exec(C, <<"where = 'io'">>) || C <- PoolCtxs],
    Self = self(),
    spawn_link(fun() ->
        ok = py_context_router:bind_context(py:context(3)),
        A = {py:eval(<<"where">>), py_context_router:get_context()},
        ok = py_context_router:bind_context(py:context(main)),
        B = py:eval(<<"where">>),
        ok = py_context_router:bind_context(py:pool(io)),
        C = {py:eval(<<"where">>), py_context_router:get_context()},
        ok = py_context_router:unbind_context(),
        D = py:context(),
        Self ! {results, A, B, C, D}
    end),
    receive {results, A, B, {CR, CCtx}, D} ->
        ?assertEqual({{ok, <<"three">>}, py:context(3)}, A),
        ?assertEqual({ok, <<"main">>}, B),
        ?assertEqual({ok, <<"io">>}, CR),
        ?assert(lists:member(CCtx, PoolCtxs)),
        ?assert(lists:member(D, py_context_router:contexts()))
    end.

pool_lifecycle(_) ->
    {ok, Ctxs} = py_context_router:start_pool(io, #{contexts => 3}),
    ?assertEqual(3, length(Ctxs)),
    ?assertEqual(#{io => Ctxs}, py_context_router:pools()),
    %% pool contexts are contexts of their own, not default ones
    [?assertNot(lists:member(C, py_context_router:contexts())) || C <- Ctxs],
    ?assertEqual(8, py_context_router:num_contexts()),
    Ctx = py:pool(io),
    ?assert(lists:member(Ctx, Ctxs)),
    ?assertEqual(Ctx, py:pool(io)),
    ok = py:exec(Ctx, <<"pooled = 7">>),
    ?assertEqual({ok, 7}, py:eval(Ctx, <<"pooled">>)),
    ?assertMatch({error, {'NameError', _}}, py:eval(py:context(1), <<"pooled">>)),
    ?assertEqual({ok, 4.0}, py:call(Ctx, math, sqrt, [16])),
    ?assertMatch({error, _}, py_context_router:start_pool(io, #{contexts => 1})),
    ?assertMatch({error, {bad_argument, _}}, py_context_router:start_pool(cpu, #{contexts => 0})),
    ok = py_context_router:stop_pool(io),
    ?assertEqual(#{}, py_context_router:pools()),
    {py_context, Id} = Ctx,
    ?assertEqual({error, {no_context, Id}}, py:eval(Ctx, <<"1">>)),
    ?assertEqual({error, {no_pool, io}}, py:eval(py:pool(io), <<"1">>)),
    ok = py_context_router:stop_pool(io),
    %% started again, with fresh interpreters
    {ok, _} = py_context_router:start_pool(io, #{contexts => 1}),
    ?assertMatch({error, {'NameError', _}}, py:eval(py:pool(io), <<"pooled">>)).

%% Each process gets its own context of the pool, least loaded first.
pool_placement_spreads(_) ->
    {ok, Ctxs} = py_context_router:start_pool(io, #{contexts => 4}),
    Self = self(),
    Pids = [spawn_link(fun() ->
                {ok, 4} = py:eval(py:pool(io), <<"2 + 2">>),
                Self ! {ctx, self(), py:pool(io)},
                receive stop -> ok end
            end) || _ <- lists:seq(1, 8)],
    Got = [receive {ctx, P, C} -> C end || P <- Pids],
    [P ! stop || P <- Pids],
    ?assertEqual(lists:sort(Ctxs), lists:usort(Got)).

%% Restarting the default contexts leaves pools and their names alone; stopping
%% every context stops pools too.
pool_survives_default_restart(_) ->
    {ok, [Ctx]} = py_context_router:start_pool(io, #{contexts => 1}),
    ok = py:exec(Ctx, <<"kept = 'yes'">>),
    {ok, _} = py_context_router:start(#{contexts => 3}),
    ?assertEqual({ok, <<"yes">>}, py:eval(Ctx, <<"kept">>)),
    ?assertEqual(Ctx, py:pool(io)),
    ok = py_context_router:stop(),
    ?assertEqual(#{}, py_context_router:pools()),
    ?assertEqual({error, {no_pool, io}}, py:call(py:pool(io), math, sqrt, [4])),
    ?assertEqual({ok, 2.0}, py:call(math, sqrt, [4])).

unknown_pool(_) ->
    ?assertEqual({error, {no_pool, nope}}, py:call(py:pool(nope), math, sqrt, [4])),
    ?assertEqual({error, {no_pool, nope}}, py:eval(py:pool(nope), <<"1">>)),
    ?assertEqual({error, {no_pool, nope}}, py:exec(py:pool(nope), <<"x = 1">>)),
    ?assertEqual({error, {no_pool, nope}}, py:stream_start(math, sqrt, [4], #{context => py:pool(nope)})),
    %% bound to a pool that does not run: the same answer, no crash
    Self = self(),
    spawn_link(fun() ->
        ok = py_context_router:bind_context(py:pool(nope)),
        Self ! {bound, py:eval(<<"1">>)}
    end),
    receive {bound, R} -> ?assertEqual({error, {no_pool, nope}}, R) end.

%% py:parallel goes through the router: N calls use N distinct contexts.
parallel_uses_distinct_contexts(_) ->
    [ok = py:exec(py:context(I), <<"whoami = ", (integer_to_binary(I))/binary>>) || I <- lists:seq(1, 8)],
    {ok, Rs} = py:parallel([{builtins, eval, [<<"whoami">>]} || _ <- lists:seq(1, 8)]),
    ?assertEqual([{ok, I} || I <- lists:seq(1, 8)], lists:sort(Rs)).

%% A module that refuses sub-interpreters (as numpy, torch and 3.12's _ctypes
%% do): the first unbound call is answered from the main interpreter, the router
%% learns the module, py:info/0 lists it, and bound calls are left alone.
refused_module_routes_to_main(Config) ->
    Dir = ?config(priv_dir, Config),
    ok = file:write_file(filename:join(Dir, "refuser.py"),
        <<"import sys\n"
          "def _interp_id():\n"
          "    try:\n"
          "        import _interpreters as m\n"
          "    except ImportError:\n"
          "        try:\n"
          "            import _xxsubinterpreters as m\n"
          "        except ImportError:\n"
          "            return 0\n"
          "    cur = m.get_current()\n"
          "    return int(cur[0] if isinstance(cur, tuple) else cur)\n"
          "if _interp_id() != 0:\n"
          "    raise ImportError('module refuser does not support loading in subinterpreters')\n"
          "def where():\n"
          "    return 'main'\n"
          "def gen():\n"
          "    yield 'main'\n"
          "async def coro():\n"
          "    return 'main'\n">>),
    {ok, Source} = file:read_file(filename:join(Dir, "refuser.py")),
    [ok = file:write_file(filename:join(Dir, Copy), binary:replace(Source, <<"module refuser ">>, <<"module ", Name/binary, " ">>))
     || {Copy, Name} <- [{"refuser_s.py", <<"refuser_s">>}, {"refuser_p.py", <<"refuser_p">>}]],
    Path = <<"d in __import__('sys').path or __import__('sys').path.insert(0, d)">>,
    [{ok, _} = py:eval(C, Path, #{d => list_to_binary(Dir)}) || C <- [py:context(main) | py_context_router:contexts()]],
    ?assertEqual({ok, <<"main">>}, py:call(refuser, where, [])),
    ?assertEqual({ok, <<"main">>}, py:call(<<"refuser">>, where, [])),
    %% learned: streams, batches and async calls naming it go there too
    ?assertEqual({ok, [<<"main">>]}, py:stream(refuser, gen, [])),
    ?assertEqual({ok, [{ok, <<"main">>} || _ <- lists:seq(1, 4)]},
                 py:parallel([{refuser, where, []} || _ <- lists:seq(1, 4)])),
    ?assertEqual({ok, <<"main">>}, py:async_await(py:async_call(refuser, coro, []))),
    %% and a stream or a batch learns it as a call does
    ?assertEqual({ok, [<<"main">>]}, py:stream(refuser_s, gen, [])),
    ?assertEqual({ok, [{ok, <<"main">>}, {ok, <<"main">>}]},
                 py:parallel([{refuser_p, where, []}, {refuser_p, where, []}])),
    Routed = maps:get(routed_to_main, py:info()),
    case py:execution_mode() of
        subinterp ->
            ?assertEqual([<<"refuser">>, <<"refuser_p">>, <<"refuser_s">>],
                         lists:sort([M || M <- Routed, lists:member(M, [<<"refuser">>, <<"refuser_s">>, <<"refuser_p">>])])),
            %% a process bound to a context gets the refusal: it chose that context
            Self = self(),
            spawn_link(fun() ->
                ok = py_context_router:bind_context(py:context(2)),
                Self ! {bound, py:call(refuser, where, [])}
            end),
            receive {bound, R} -> ?assertMatch({error, {'ImportError', _}}, R) end;
        _ ->
            ?assertNot(lists:member(<<"refuser">>, Routed))
    end.

%% The real thing where this Python has it: ctypes on 3.12 (its _ctypes is a
%% single-phase extension); elsewhere ctypes loads anywhere and the call runs
%% where it is placed.
real_refusal_ctypes(_) ->
    ?assertMatch({ok, I} when is_integer(I), py:call(ctypes, get_errno, [])),
    ?assertMatch({ok, I} when is_integer(I), py:call(ctypes, get_errno, [])).

%%% Helpers

routed_processes() ->
    maps:get(processes, py_nif:routes()).

%% Process monitors fire asynchronously: wait until the map is back to `N'
%% processes (the test's own and the application's, placed before).
wait_routed_at_most(N) ->
    py_test_util:wait_until(fun() -> routed_processes() =< N end, 30000).

%% A process calling back to back is routed from its scheduler's memory of its
%% last route; every change is still seen by its next call: a binding, its
%% removal, a pool binding, the default contexts replaced.
back_to_back_routes_follow_changes(_) ->
    Mark = fun() -> [ok = py:exec(py:context(I), <<"ep_mark = ", (integer_to_binary(I))/binary>>)
                     || I <- lists:seq(1, py_context_router:num_contexts())] end,
    Mark(),
    Where = fun() -> [{ok, M}] = lists:usort([py:eval(<<"ep_mark">>) || _ <- lists:seq(1, 50)]), M end,
    Placed = Where(),
    Other = Placed rem py_context_router:num_contexts() + 1,
    ok = py_context_router:bind_context(py:context(Other)),
    ?assertEqual(Other, Where()),
    ok = py_context_router:unbind_context(),
    ?assertEqual(Placed, Where()),
    {ok, [P]} = py_context_router:start_pool(ep_marks, #{contexts => 1}),
    ok = py:exec(P, <<"ep_mark = 'pool'">>),
    ok = py_context_router:bind_context(py:pool(ep_marks)),
    ?assertEqual(<<"pool">>, Where()),
    ok = py_context_router:unbind_context(),
    ?assertEqual(Placed, Where()),
    %% new default contexts: the old placement is gone, and so is its route
    {ok, _} = py_context_router:start(#{contexts => 2}),
    Mark(),
    ?assert(lists:member(Where(), [1, 2])).
