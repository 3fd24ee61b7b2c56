%% Contexts, the router and parallel execution: the seed's examples as written,
%% isolation, stickiness, supervision, restarts, known CPython hazards.
-module(py_context_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-compile([export_all, nowarn_export_all]).

all() ->
    [seed_explicit_context, seed_automatic_routing, seed_subinterp_checks, seed_router_api,
     seed_parallel, parallel_spreads_over_contexts, parallel_errors_in_order, isolation_names, isolation_exceptions,
     busy_context_does_not_block_others, exec_then_call_sticks, bind_context_wins,
     restart_with_other_count, too_many_contexts, failed_context_is_replaced,
     decimal_everywhere, main_interpreter_modules, start_stop_cycles_with_calls_in_flight,
     stopped_context_frees_its_names, stopped_context_ends_its_threads,
     seed_sixteen_contexts].

init_per_suite(Config) ->
    py_test_util:start_app(Config).

end_per_suite(_Config) ->
    py_test_util:stop_app().

init_per_testcase(_, Config) ->
    {ok, _} = py_context_router:start(#{contexts => 2}),
    Config.

end_per_testcase(_, _Config) ->
    ok.

subinterp() -> py:execution_mode() =:= subinterp.

%%% The seed's examples, as written

seed_explicit_context(_) ->
    %% Get a specific context by index (1-based)
    Ctx = py:context(1),
    {ok, Result} = py:call(Ctx, math, sqrt, [16]),
    ?assertEqual(4.0, Result),
    %% Or use automatic scheduler-affinity routing
    {ok, Result2} = py:call(math, sqrt, [16]),
    ?assertEqual(4.0, Result2),
    %% All operations on this context share state
    ok = py:exec(Ctx, <<"my_var = 'hello'">>),
    {ok, <<"hello">>} = py:eval(Ctx, <<"my_var">>),
    {ok, 4.0} = py:call(Ctx, math, sqrt, [16]),
    %% Different context has isolated state
    Ctx2 = py:context(2),
    {error, _} = py:eval(Ctx2, <<"my_var">>).

seed_automatic_routing(_) ->
    %% Start contexts (usually done by application startup)
    {ok, _} = py:start_contexts(),
    %% Calls are automatically routed to subinterpreters
    {ok, 4.0} = py:call(math, sqrt, [16]),
    {ok, 6} = py:eval(<<"2 + 4">>),
    ok = py:exec(<<"x = 42">>),
    ?assertEqual({ok, 42}, py:eval(<<"x">>)),
    ?assert(py:contexts_started()),
    ?assertEqual(erlang:system_info(schedulers), py_context_router:num_contexts()).

seed_subinterp_checks(_) ->
    %% what the linked Python is, asked of Python itself
    {ok, [AtLeast312, FreeThreaded]} =
        py:eval(py:context(main), <<"[__import__('sys').version_info >= (3, 12), "
                                    "bool(__import__('sysconfig').get_config_var('Py_GIL_DISABLED'))]">>),
    %% OWN_GIL sub-interpreters: CPython 3.12 and later, GIL builds only
    ?assertEqual(AtLeast312 andalso not FreeThreaded, py:subinterp_supported()),
    ?assertEqual(if FreeThreaded -> free_threaded; AtLeast312 -> subinterp; true -> multi_executor end,
                 py:execution_mode()),
    %% the seed's example
    case py:subinterp_supported() of
        true ->
            true = py:subinterp_supported(),
            subinterp = py:execution_mode();
        false ->
            ?assert(lists:member(py:execution_mode(), [multi_executor, free_threaded]))
    end,
    ?assert(is_integer(py:num_executors())).

seed_router_api(_) ->
    %% Start router with default number of contexts (scheduler count)
    {ok, Contexts} = py_context_router:start(),
    ?assertEqual(erlang:system_info(schedulers), length(Contexts)),
    %% Start with custom number of contexts
    {ok, Contexts8} = py_context_router:start(#{contexts => 8}),
    ?assertEqual(8, length(Contexts8)),
    %% Get context for current scheduler (automatic affinity)
    Ctx = py_context_router:get_context(),
    ?assert(lists:member(Ctx, Contexts8)),
    %% Get specific context by index
    Ctx1 = py_context_router:get_context(1),
    %% Bind current process to a specific context
    ok = py_context_router:bind_context(Ctx1),
    ?assertEqual(Ctx1, py_context_router:get_context()),
    ok = py:exec(<<"bound_here = 1">>),
    ?assertEqual({ok, 1}, py:eval(Ctx1, <<"bound_here">>)),
    %% Unbind (return to scheduler-based routing)
    ok = py_context_router:unbind_context(),
    %% Get number of active contexts
    N = py_context_router:num_contexts(),
    ?assertEqual(8, N),
    %% Stop all contexts
    ok = py_context_router:stop(),
    ?assertEqual(0, py_context_router:num_contexts()),
    ?assertNot(py:contexts_started()),
    %% with no contexts, calls run on the main interpreter
    ?assertEqual({ok, 4.0}, py:call(math, sqrt, [16])).

seed_parallel(_) ->
    {ok, Results} = py:parallel([
        {math, sqrt, [16]},
        {math, sqrt, [25]},
        {math, sqrt, [36]}
    ]),
    ?assertEqual([{ok, 4.0}, {ok, 5.0}, {ok, 6.0}], Results).

%% py:parallel spreads its calls over distinct contexts, and they are in flight
%% at the same time: each call waits (bounded) until all have arrived.
parallel_spreads_over_contexts(_) ->
    N = py_context_router:num_contexts(),
    Def = <<"import erlang, time\n"
            "def rendezvous(key, n):\n"
            "    erlang.state_incr(key)\n"
            "    end = time.monotonic() + 20\n"
            "    while erlang.state_get(key) < n and time.monotonic() < end:\n"
            "        time.sleep(0.001)\n"
            "    return (whoami, erlang.state_get(key) >= n)\n">>,
    [ok = py:exec(py:context(I), <<"whoami = ", (integer_to_binary(I))/binary, "\n", Def/binary>>)
     || I <- lists:seq(1, N)],
    Key = <<"rendezvous">>,
    py:state_remove(Key),
    {ok, Results} = py:parallel([{'__main__', rendezvous, [Key, N]} || _ <- lists:seq(1, N)]),
    ?assertEqual([{ok, {I, true}} || I <- lists:seq(1, N)], lists:sort(Results)),
    %% more calls than contexts: each context gets its share
    {ok, More} = py:parallel([{'__main__', rendezvous, [<<"unused">>, 0]} || _ <- lists:seq(1, 2 * N)]),
    ?assertEqual(lists:sort([{ok, {I, true}} || I <- lists:seq(1, N), _ <- [1, 2]]), lists:sort(More)),
    py:state_remove(Key).

parallel_errors_in_order(_) ->
    {ok, Results} = py:parallel([{math, sqrt, [4]}, {math, sqrt, [-1]}, {nope_mod, f, []},
                                 {operator, add, [1, 2]}, {math, sqrt, [make_ref()]}, bad]),
    ?assertMatch([{ok, 2.0}, {error, {'ValueError', _}}, {error, {'ModuleNotFoundError', _}},
                  {ok, 3}, {error, {bad_argument, _}}, {error, {bad_argument, _}}], Results),
    ?assertEqual({ok, []}, py:parallel([])).

%%% Isolation

isolation_names(_) ->
    ok = py:exec(py:context(1), <<"only_in_one = 1\ndef f(): return 'one'">>),
    ?assertEqual({ok, 1}, py:eval(py:context(1), <<"only_in_one">>)),
    ?assertMatch({error, {'NameError', _}}, py:eval(py:context(2), <<"only_in_one">>)),
    ?assertEqual({ok, <<"one">>}, py:call(py:context(1), '__main__', f, [])),
    ?assertMatch({error, {'NameError', _}}, py:call(py:context(2), '__main__', f, [])),
    %% names defined by exec are attributes of that context's __main__, in
    %% every mode (contexts sharing the main interpreter included)
    ?assertEqual({ok, 1}, py:eval(py:context(1), <<"__import__('__main__').only_in_one">>)),
    ?assertMatch({error, {'AttributeError', _}}, py:eval(py:context(2), <<"__import__('__main__').only_in_one">>)),
    ok = py:exec(py:context(2), <<"import __main__\n__main__.set_as_attr = 2\n">>),
    ?assertEqual({ok, 2}, py:eval(py:context(2), <<"set_as_attr">>)),
    ?assertEqual({ok, true}, py:eval(py:context(2), <<"__import__('__main__').__dict__ is globals()">>)),
    %% so pickle finds a class defined in a context, and gives it back
    ok = py:exec(py:context(1), <<"import pickle\nclass Point:\n    def __init__(self, x): self.x = x\n">>),
    ?assertEqual({ok, 7}, py:eval(py:context(1), <<"pickle.loads(pickle.dumps(Point(7))).x">>)),
    %% also in a stream's generator and an asyncio task of that context
    ok = py:exec(py:context(1), <<"import __main__\n"
                                   "def gen():\n    yield __main__.only_in_one\n"
                                   "async def coro():\n    return pickle.loads(pickle.dumps(__main__.Point(8))).x\n">>),
    {ok, S} = py:stream_start('__main__', gen, [], #{context => py:context(1)}),
    receive {py_chunk, S, Item} -> ?assertEqual(1, Item) after 30000 -> ct:fail(no_chunk) end,
    receive {py_end, S} -> ok after 30000 -> ct:fail(no_end) end,
    Self = self(),
    spawn_link(fun() ->
        ok = py_context_router:bind_context(py:context(1)),
        Self ! {coro, py:async_await(py:async_call('__main__', coro, []))}
    end),
    receive {coro, Got} -> ?assertEqual({ok, 8}, Got) after 30000 -> ct:fail(no_coro) end,
    %% the main interpreter's own __main__ is left as it is
    ?assertMatch({error, {'NameError', _}}, py:eval(py:context(main), <<"only_in_one">>)),
    ?assertMatch({error, {'AttributeError', _}}, py:eval(py:context(main), <<"__import__('__main__').only_in_one">>)).

%% A stopped context's names are freed with it, even when a function defined
%% there refers back to them (on a free-threaded build each stop used to keep
%% them all). Checked where contexts share the main interpreter, whose `sys'
%% outlives them.
stopped_context_frees_its_names(_) ->
    case subinterp() of
        true ->
            {skip, "a sub-interpreter's objects end with it"};
        false ->
            {ok, [Ctx]} = py_context_router:start_pool(freed, #{contexts => 1}),
            ok = py:exec(Ctx, <<"import sys, weakref\nclass O: pass\ndef f(): return o\n"
                                "o = O()\nsys._ep_freed = weakref.ref(o)\n">>),
            ?assertEqual({ok, false}, py:eval(py:context(main), <<"__import__('sys')._ep_freed() is None">>)),
            ok = py_context_router:stop_pool(freed),
            ?assertEqual({ok, true}, py:eval(py:context(main), <<"__import__('gc').collect() >= 0 and "
                                                                "__import__('sys')._ep_freed() is None">>))
    end.

%% A sub-interpreter's end waits for its Python threads: one that loops is
%% asked to end (SystemExit), so the stop neither waits out its grace nor
%% leaves the context's OS thread and interpreter behind for good.
stopped_context_ends_its_threads(_) ->
    case subinterp() of
        false ->
            {skip, "contexts share the main interpreter: its threads outlive them"};
        true ->
            Before = py_test_util:thread_count(),
            {ok, [Ctx]} = py_context_router:start_pool(threaded, #{contexts => 1}),
            py:state_remove(<<"thread_finished">>),
            ok = py:exec(Ctx, <<"import threading, time, erlang\n"
                                "def spin():\n    while True:\n        time.sleep(0.01)\n"
                                "def finish():\n    time.sleep(0.2)\n    erlang.state_set('thread_finished', 1)\n"
                                "threading.Thread(target=spin).start()\n"
                                "threading.Thread(target=finish).start()\n">>),
            ?assert(py_test_util:thread_count() >= Before + 3),
            ok = py_context_router:stop_pool(threaded),
            ok = py_test_util:wait_until(fun() -> py_test_util:thread_count() =< Before end, 30000),
            %% a thread about to end by itself was given the time to
            ?assertEqual({ok, 1}, py:state_fetch(<<"thread_finished">>))
    end.

isolation_exceptions(_) ->
    ok = py:exec(py:context(2), <<"kept = 'still here'">>),
    ?assertMatch({error, {'RuntimeError', _}}, py:exec(py:context(1), <<"raise RuntimeError('boom')">>)),
    ?assertMatch({error, {'SystemExit', _}}, py:exec(py:context(1), <<"raise SystemExit(1)">>)),
    ?assertEqual({ok, <<"still here">>}, py:eval(py:context(2), <<"kept">>)),
    ?assertEqual({ok, 2}, py:eval(py:context(1), <<"1 + 1">>)).

%% Context 1 spins in pure Python until a gate opens; context 2 answers meanwhile.
busy_context_does_not_block_others(Config) ->
    Gate = filename:join(?config(priv_dir, Config), "gate1"),
    file:delete(Gate),
    Self = self(),
    Started = Gate ++ ".started",
    file:delete(Started),
    Spin = iolist_to_binary(["import os\nopen(r'", Started, "', 'w').close()\nn = 0\n"
                             "while not os.path.exists(r'", Gate, "'):\n    n += 1\n"]),
    Busy = spawn_link(fun() -> Self ! {busy_done, py:exec(py:context(1), Spin)} end),
    %% wait until context 1 is inside its loop
    ok = py_test_util:wait_until(fun() -> filelib:is_regular(Started) end),
    ?assertEqual({ok, 4.0}, py:call(py:context(2), math, sqrt, [16])),
    ?assertEqual({ok, 499500}, py:eval(py:context(2), <<"sum(range(1000))">>)),
    ok = file:write_file(Gate, <<>>),
    receive {busy_done, R} -> ?assertEqual(ok, R) after 30000 -> ct:fail(busy_stuck) end,
    unlink(Busy).

exec_then_call_sticks(_) ->
    Self = self(),
    Pids = [spawn_link(fun() ->
                Name = list_to_binary("f_" ++ integer_to_list(I)),
                ok = py:exec(<<"def ", Name/binary, "(x):\n    return x + ", (integer_to_binary(I))/binary, "\n">>),
                R = [py:call('__main__', Name, [J]) || J <- lists:seq(1, 5)],
                Self ! {done, I, R}
            end) || I <- lists:seq(1, 200)],
    [receive {done, I, R} -> ?assertEqual([{ok, I + J} || J <- lists:seq(1, 5)], R) end
     || I <- lists:seq(1, length(Pids))].

bind_context_wins(_) ->
    ok = py:exec(py:context(2), <<"where = 'two'">>),
    ok = py:exec(py:context(1), <<"where = 'one'">>),
    Self = self(),
    spawn_link(fun() ->
        ok = py_context_router:bind_context(py:context(2)),
        R1 = py:eval(<<"where">>),
        ok = py_context_router:bind_context(py:context(1)),
        R2 = py:eval(<<"where">>),
        Self ! {bound, R1, R2}
    end),
    receive {bound, R1, R2} ->
        ?assertEqual({ok, <<"two">>}, R1),
        ?assertEqual({ok, <<"one">>}, R2)
    end,
    %% a bound process gets its bound context, whatever its scheduler says
    spawn_link(fun() ->
        ok = py_context_router:bind_context(py:context(2)),
        Got = [py_context_router:get_context() || _ <- lists:seq(1, 20)],
        ok = py_context_router:unbind_context(),
        Self ! {ctx, Got}
    end),
    receive {ctx, B} -> ?assertEqual(lists:duplicate(20, py:context(2)), B) end.

restart_with_other_count(_) ->
    ok = py:exec(py:context(1), <<"old = 1">>),
    {ok, Ctxs} = py_context_router:start(#{contexts => 3}),
    ?assertEqual(3, length(Ctxs)),
    ?assertEqual(3, py_context_router:num_contexts()),
    ?assertMatch({error, {'NameError', _}}, py:eval(py:context(1), <<"old">>)),
    ?assertEqual({ok, 9}, py:eval(py:context(3), <<"3 * 3">>)),
    ?assertEqual({error, {no_context, 4}}, py:eval(py:context(4), <<"1">>)),
    %% a process stuck to a context of the old set re-picks after a restart
    {ok, _} = py_context_router:start(#{contexts => 1}),
    ?assertEqual({ok, 2}, py:eval(<<"1 + 1">>)),
    ?assertEqual(py:context(1), py_context_router:get_context()).

too_many_contexts(_) ->
    ?assertMatch({error, {bad_argument, _}}, py_context_router:start(#{contexts => 65})),
    ?assertMatch({error, {bad_argument, _}}, py_context_router:start(#{contexts => 0})),
    ?assertEqual(2, py_context_router:num_contexts()),
    ?assertEqual({ok, 2}, py:eval(py:context(2), <<"2">>)).

failed_context_is_replaced(_) ->
    ok = py:exec(py:context(2), <<"survivor = True">>),
    Tag = make_ref(),
    {ok, _H} = py_nif:submit(1, '$crash', {}, Tag, undefined),
    Reply = receive {py_reply, Tag, R} -> R after 30000 -> timeout end,
    %% the actor serving the context (its own, or an executor when contexts share
    %% the main interpreter) failed: its caller hears about it
    ?assertEqual({error, context_failed}, Reply),
    %% the replacement serves; the other context kept its state
    ?assertEqual({ok, 2}, eventually(fun() -> py:eval(py:context(1), <<"1 + 1">>) end)),
    ?assertEqual({ok, true}, py:eval(py:context(2), <<"survivor">>)).

eventually(F) -> eventually(F, 100).
eventually(F, 0) -> F();
eventually(F, N) ->
    case F() of
        {ok, _} = Ok -> Ok;
        _ -> timer:sleep(20), eventually(F, N - 1)
    end.

%% CPython 3.12 aborts the process when _decimal loads in a second
%% sub-interpreter; the node must stay up and decimal must work everywhere.
decimal_everywhere(_) ->
    {ok, Ctxs} = py_context_router:start(#{contexts => 4}),
    Code = <<"import decimal\nfrom decimal import Decimal, getcontext\ngetcontext().prec = 30\n"
             "result = str(Decimal(1) / Decimal(7))">>,
    Self = self(),
    [spawn_link(fun() ->
         R = [begin ok = py:exec(Ctx, Code), py:eval(Ctx, <<"result">>) end || _ <- lists:seq(1, 20)],
         Self ! {dec, R}
     end) || Ctx <- Ctxs ++ Ctxs],
    [receive {dec, R} -> [?assertEqual({ok, <<"0.142857142857142857142857142857">>}, X) || X <- R]
     after 60000 -> ct:fail(decimal_stuck) end || _ <- Ctxs ++ Ctxs],
    ?assertEqual({ok, <<"0.3">>}, py:eval(py:context(main), <<"str(__import__('decimal').Decimal('0.1') * 3)">>)).

%% Modules that refuse sub-interpreters say what to do, and run on the main one.
main_interpreter_modules(_) ->
    %% Single-phase-init extension modules refuse sub-interpreters: _ctypes on
    %% 3.12, CPython's own _testsinglephase on every version that ships it.
    Refusals = [{M, Msg} || M <- [<<"_ctypes">>, <<"_testsinglephase">>],
                       {error, {'ImportError', Msg}} <- [import(py:context(1), M)]],
    ct:pal("refusals: ~p", [Refusals]),
    %% (3.13 loads _ctypes, and builds without test modules lack _testsinglephase)
    {ok, Minor} = py:eval(<<"__import__('sys').version_info[1]">>),
    case {subinterp(), Minor} of
        %% 3.12's _ctypes is single-phase init: it must be refused, with the hint
        {true, 12} -> ?assert(lists:keymember(<<"_ctypes">>, 1, Refusals));
        {true, _} -> ok;
        {false, _} -> ?assertEqual([], Refusals)
    end,
    %% CPython's refusal message always gets the hint
    {error, {'ImportError', Hinted}} =
        py:exec(py:context(1), <<"raise ImportError('module _x does not support loading in subinterpreters')">>),
    ?assertNotEqual(nomatch, binary:match(Hinted, <<"py:context(main)">>)),
    [?assertNotEqual(nomatch, binary:match(Msg, <<"py:context(main)">>)) || {_, Msg} <- Refusals],
    %% and each of them loads in the main interpreter, in the same node
    [?assertEqual({ok, M}, import(py:context(main), M)) || {M, _} <- [{<<"_ctypes">>, x} | Refusals]],
    ?assertMatch({ok, _}, py:eval(py:context(main), <<"__import__('ctypes').sizeof(__import__('ctypes').c_int)">>)).

import(Ctx, M) ->
    py:eval(Ctx, <<"__import__('importlib').import_module(m).__name__">>, #{m => M}).

%% Restart the router over and over while callers keep calling: every call is
%% answered (a value or a clear error), nothing crashes, no thread is leaked.
start_stop_cycles_with_calls_in_flight(_) ->
    %% one warm-up cycle, so pools that keep a parked thread already have it
    ok = py_context_router:stop(),
    {ok, _} = py_context_router:start(#{contexts => 2}),
    Before = py_test_util:thread_count(),
    Self = self(),
    Stop = make_ref(),
    Callers = [spawn_link(fun() -> py_test_util:call_loop(Self, Stop, [context_stopped, no_context]) end) || _ <- lists:seq(1, 8)],
    [begin
         {ok, _} = py_context_router:start(#{contexts => 1 + I rem 3}),
         case I rem 4 of 0 -> ok = py_context_router:stop(); _ -> ok end
     end || I <- lists:seq(1, 200)],
    [P ! Stop || P <- Callers],
    Counts = [receive {calls, P, N, Bad} -> {N, Bad} after 60000 -> ct:fail(caller_stuck) end || P <- Callers],
    ct:pal("calls per caller: ~p", [Counts]),
    [?assertEqual([], Bad) || {_, Bad} <- Counts],
    ?assert(lists:sum([N || {N, _} <- Counts]) > 0),
    {ok, _} = py_context_router:start(#{contexts => 2}),
    %% no permit or waiter left behind
    ok = py_test_util:wait_until(fun() -> py_semaphore:current() =:= 0 end),
    ?assertEqual(0, py_semaphore:waiting()),
    After = py_test_util:thread_count(),
    ct:pal("threads before ~p, after ~p", [Before, After]),
    ?assertEqual(Before, After).


%% The seed's configuration: `{num_contexts, 16}' in sys.config, and
%% `py_context_router:start(#{contexts => 16})' at run time.
seed_sixteen_contexts(_) ->
    Old = application:get_env(erlang_python, num_contexts),
    ok = application:stop(erlang_python),
    try
        application:set_env(erlang_python, num_contexts, 16),
        {ok, _} = application:ensure_all_started(erlang_python),
        ?assertEqual(16, py_context_router:num_contexts()),
        {ok, Ctxs} = py_context_router:start(#{contexts => 16}),
        ?assertEqual(16, length(Ctxs)),
        [ok = py:exec(C, <<"who = ", (integer_to_binary(I))/binary>>) || {I, C} <- lists:zip(lists:seq(1, 16), Ctxs)],
        ?assertEqual([{ok, I} || I <- lists:seq(1, 16)], [py:eval(C, <<"who">>) || C <- Ctxs])
    after
        ok = application:stop(erlang_python),
        case Old of
            undefined -> application:unset_env(erlang_python, num_contexts);
            {ok, V} -> application:set_env(erlang_python, num_contexts, V)
        end,
        {ok, _} = application:ensure_all_started(erlang_python)
    end.
