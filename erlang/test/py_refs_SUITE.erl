%% Python objects by reference (`#{return => ref}'), and channels from Erlang
%% into running Python.
-module(py_refs_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-compile([export_all, nowarn_export_all]).

-define(COUNTER, <<"import weakref\n"
                   "class Counter:\n"
                   "    def __init__(self, start):\n"
                   "        self.n = start\n"
                   "    def add(self, k=1):\n"
                   "        self.n += k\n"
                   "        return self.n\n"
                   "def value_of(c):\n"
                   "    return c.n\n"
                   "alive = weakref.WeakSet()\n"
                   "class Tracked:\n"
                   "    def __init__(self, size):\n"
                   "        self.payload = b'x' * size\n"
                   "def make(size):\n"
                   "    t = Tracked(size)\n"
                   "    alive.add(t)\n"
                   "    return t\n">>).

all() ->
    [ref_round_trip, ref_as_argument, ref_routed_to_its_owner, ref_on_main_interpreter,
     ref_collected_while_its_request_waits,
     ref_bad_input, dropped_refs_release_their_objects, ref_after_context_stopped,
     channel_in_order_and_bounded, channel_recv_forms, channel_closed_by_gc,
     channels_closed_undrained_are_freed, channel_closed_on_its_way_is_drained,
     channel_recv_interrupted].

init_per_suite(Config) ->
    py_test_util:start_app(Config, #{contexts => 2}).

end_per_suite(_Config) ->
    py_test_util:stop_app().

init_per_testcase(_, Config) ->
    {ok, _} = py_context_router:start(#{contexts => 2}),
    [ok = py:exec(C, ?COUNTER) || C <- [py:context(1), py:context(2), py:context(main)]],
    Config.

end_per_testcase(_, _Config) ->
    ok.



ref_round_trip(_) ->
    Ctx = py:context(1),
    {ok, C} = py:eval(Ctx, <<"Counter(5)">>, #{}, #{return => ref}),
    ?assert(py:is_ref(C)),
    ?assertNot(py:is_ref(make_ref())),
    ?assertNot(py:is_ref(5)),
    ?assertEqual({ok, 6}, py:call_method(C, add, [])),
    ?assertEqual({ok, 8}, py:call_method(C, add, [], #{k => 2})),
    ?assertEqual({ok, 8}, py:getattr(C, n)),
    ?assertEqual({ok, <<"Counter">>}, py:eval(Ctx, <<"type(c).__name__">>, #{c => C})),
    %% an object with no Erlang counterpart stays a ref; converting it says why
    ?assertEqual({error, {unsupported_type, <<"Counter">>}}, py:to_term(C)),
    {ok, L} = py:call(Ctx, builtins, list, [[1, 2, 3]], #{return => ref}),
    ?assertEqual({ok, [1, 2, 3]}, py:to_term(L)),
    ?assertEqual({ok, none}, py:call_method(L, append, [4])),
    ?assertEqual({ok, [1, 2, 3, 4]}, py:to_term(L)),
    {ok, D} = py:call(Ctx, decimal, 'Decimal', [<<"1.25">>], #{return => ref}),
    ?assertEqual({ok, <<"1.25">>}, py:call_method(D, to_eng_string, [])),
    ?assertMatch({error, {'AttributeError', _}}, py:call_method(D, no_such_method, [])).

%% A ref passed back to its own context arrives as the object itself; to
%% another context, it is refused.
ref_as_argument(_) ->
    {ok, C} = py:eval(py:context(1), <<"Counter(41)">>, #{}, #{return => ref}),
    ?assertEqual({ok, 41}, py:call(py:context(1), '__main__', value_of, [C])),
    %% inside containers too
    ?assertEqual({ok, 41}, py:eval(py:context(1), <<"value_of(d['x'][0])">>, #{d => #{x => [C]}})),
    ?assertMatch({error, {bad_argument, _}}, py:call(py:context(2), '__main__', value_of, [C])),
    ?assertMatch({error, {bad_argument, _}}, py:call(py:context(main), '__main__', value_of, [C])).

%% Whoever calls, work on a ref runs in the context that keeps its object.
ref_routed_to_its_owner(_) ->
    {ok, C} = py:eval(py:context(2), <<"Counter(0)">>, #{}, #{return => ref}),
    Self = self(),
    Pids = [spawn_link(fun() ->
                ok = py_context_router:bind_context(py:context(1)),
                Self ! {done, self(), [py:call_method(C, add, []) || _ <- lists:seq(1, 50)]}
            end) || _ <- lists:seq(1, 10)],
    Results = lists:append([receive {done, P, R} -> R end || P <- Pids]),
    ?assertEqual(lists:seq(1, 500), lists:sort([N || {ok, N} <- Results])),
    ?assertEqual({ok, 500}, py:getattr(C, n)).

ref_on_main_interpreter(_) ->
    {ok, C} = py:eval(py:context(main), <<"Counter(1)">>, #{}, #{return => ref}),
    ?assertEqual({ok, 2}, py:call_method(C, add, [])),
    ?assertEqual({ok, 2}, py:call(py:context(main), '__main__', value_of, [C])).

%% A request carrying a ref keeps its object alive: the caller's last copy may
%% be collected before the request runs. The main interpreter's executors
%% take requests and release jobs in any order: here each executor is held
%% by a sleep of its own length, so the first to wake runs the release jobs
%% queued behind it while other executors still hold requests for those refs.
ref_collected_while_its_request_waits(_) ->
    [begin
         {Sleeps, Pending} = requests_with_dead_refs(Ctx),
         %% no copy of the refs is left in this process
         true = erlang:garbage_collect(),
         ?assertEqual([{ok, I} || I <- lists:seq(1, length(Pending))],
                      [py:await(P) || P <- Pending]),
         ?assertEqual([{ok, none} || _ <- Sleeps], [py:await(S) || S <- Sleeps])
     end || Ctx <- [py:context(main), py:context(1)]].

requests_with_dead_refs(Ctx) ->
    N = max(1, py:num_executors()),
    Refs = [begin
                {ok, C} = py:eval(Ctx, <<"Counter(i)">>, #{i => I}, #{return => ref}),
                C
            end || I <- lists:seq(1, 4 * N + 1)],
    Sleeps = [py:spawn_call(Ctx, time, sleep, [0.1 * S], #{}) || S <- lists:seq(1, N)],
    {Sleeps, [py:spawn_call(Ctx, '__main__', value_of, [C], #{}) || C <- Refs]}.

ref_bad_input(_) ->
    ?assertEqual({error, {bad_argument, <<"not a ref">>}}, py:call_method(make_ref(), add, [])),
    ?assertEqual({error, {bad_argument, <<"not a ref">>}}, py:getattr(self(), n)),
    ?assertMatch({error, {bad_argument, _}}, py:call(py:context(1), math, sqrt, [4], #{return => maybe})),
    {ok, C} = py:eval(py:context(1), <<"Counter(1)">>, #{}, #{return => ref}),
    ?assertMatch({error, {bad_argument, _}}, py:call_method(C, add, not_a_list)),
    ?assertMatch({error, {'TypeError', _}}, py:call_method(C, add, [1, 2, 3])),
    %% plain references still cannot cross
    ?assertMatch({error, {bad_argument, _}}, py:call(builtins, id, [make_ref()])).

%% 10,000 refs whose last copies are collected: their objects are released in
%% their context (weak references die), and the memory they held is given back
%% (or, on a free-threaded build, whose mimalloc keeps freed pages for reuse,
%% reused: a second round does not grow the node).
dropped_refs_release_their_objects(_) ->
    Ctx = py:context(1),
    N = 10000,
    Size = 20000,
    Rss0 = rss_kb(),
    Grown = make_and_drop(Ctx, N, Size) - Rss0,
    ?assert(Grown > N * Size div 1024 div 2),
    %% The objects' memory is free once they are; whether malloc hands it back
    %% to the OS at once depends on what else sits in its arenas (other suites
    %% ran before this one), so it is asked to: a leaked object would still hold
    %% its memory and keep RSS up.
    Freed = fun() -> trim_malloc(), rss_kb() - Rss0 < Grown div 3 end,
    case py:execution_mode() of
        free_threaded -> ok;
        _ -> ok = py_test_util:wait_until(Freed, 30000)
    end,
    Rss1 = rss_kb(),
    Peak2 = make_and_drop(Ctx, N, Size),
    ct:pal("RSS ~p kB; with 10,000 refs +~p kB; after release ~p kB; second round peak ~p kB",
           [Rss0, Grown, Rss1, Peak2]),
    ?assert(Peak2 - Rss0 < Grown + Grown div 3).

%% Makes N refs of Size-byte objects in a process, drops them all (the process
%% exits) and waits until their objects are gone; returns the RSS with them.
make_and_drop(Ctx, N, Size) ->
    Self = self(),
    Holder = spawn(fun() ->
        Refs = [begin {ok, R} = py:call(Ctx, '__main__', make, [Size], #{return => ref}), R end
                || _ <- lists:seq(1, N)],
        Self ! {made, length(Refs)},
        receive drop -> ok end
    end),
    receive {made, N} -> ok after 120000 -> ct:fail(refs_not_made) end,
    ?assertEqual({ok, N}, py:eval(Ctx, <<"len(alive)">>)),
    Rss = rss_kb(),
    Holder ! drop,
    ok = py_test_util:wait_until(fun() -> py:eval(Ctx, <<"len(alive)">>) =:= {ok, 0} end, 30000),
    Rss.

%% A ref whose context is gone, or was replaced, says so.
ref_after_context_stopped(_) ->
    {ok, C2} = py:eval(py:context(2), <<"Counter(1)">>, #{}, #{return => ref}),
    {ok, C1} = py:eval(py:context(1), <<"Counter(1)">>, #{}, #{return => ref}),
    {ok, _} = py_context_router:start(#{contexts => 1}),
    ?assertEqual({error, context_stopped}, py:call_method(C2, add, [])),
    ?assertEqual({error, context_stopped}, py:call_method(C1, add, [])),
    ?assertEqual({error, context_stopped}, py:getattr(C1, n)).

%% 100,000 terms from Erlang into running Python, in order, never more than
%% `max' queued.
channel_in_order_and_bounded(_) ->
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"def consume(ch):\n"
                        "    n = 0\n"
                        "    for msg in ch:\n"
                        "        if msg != n:\n"
                        "            return ('out_of_order', n, msg)\n"
                        "        n += 1\n"
                        "    return n\n">>),
    {ok, Ch} = py:channel(#{max => 100}),
    Self = self(),
    spawn_link(fun() -> Self ! {consumed, py:call(Ctx, '__main__', consume, [Ch], #{timeout => 120000})} end),
    Full = send_all(Ch, 0, 100000, 0),
    ct:pal("100,000 sent; {error, full} answered ~p times (max 100)", [Full]),
    ok = py:channel_close(Ch),
    receive {consumed, R} -> ?assertEqual({ok, 100000}, R) after 120000 -> ct:fail(consumer_stuck) end,
    ?assertEqual({error, closed}, py:channel_send(Ch, late)).

send_all(_Ch, N, N, Full) -> Full;
send_all(Ch, I, N, Full) ->
    ?assert(py_nif:channel_len(Ch) =< 100),
    case py:channel_send(Ch, I) of
        ok -> send_all(Ch, I + 1, N, Full);
        {error, full} -> erlang:yield(), send_all(Ch, I, N, Full + 1)
    end.

channel_recv_forms(_) ->
    ok = py:exec(py:context(1), <<"def recv_one(ch, t):\n"
                                  "    try:\n"
                                  "        return ('got', ch.recv(timeout=t))\n"
                                  "    except TimeoutError:\n"
                                  "        return 'timeout'\n"
                                  "    except erlang.ChannelClosed:\n"
                                  "        return 'closed'\n"
                                  "def recv_inf(ch):\n"
                                  "    return recv_one(ch, float('inf'))\n"
                                  "async def arecv_one(ch):\n"
                                  "    return await ch.arecv()\n">>),
    ok = py_context_router:bind_context(py:context(1)),
    {ok, Ch} = py:channel(),
    ?assertEqual({ok, <<"timeout">>}, py:call('__main__', recv_one, [Ch, 0.05])),
    ok = py:channel_send(Ch, #{k => [1, {2, <<"x">>}]}),
    ?assertEqual({ok, {<<"got">>, #{<<"k">> => [1, {2, <<"x">>}]}}}, py:call('__main__', recv_one, [Ch, 1])),
    ok = py:channel_send(Ch, self()),
    ?assertEqual({ok, self()}, py:async_await(py:async_call('__main__', arecv_one, [Ch]))),
    %% a timeout too long for a deadline is none (it made Rust panic)
    ok = py:channel_send(Ch, 7),
    ?assertEqual({ok, {<<"got">>, 7}}, py:call('__main__', recv_one, [Ch, 1.0e300])),
    ok = py:channel_send(Ch, 8),
    ?assertEqual({ok, {<<"got">>, 8}}, py:call('__main__', recv_inf, [Ch])),
    ok = py:channel_close(Ch),
    ?assertEqual({ok, <<"closed">>}, py:call('__main__', recv_one, [Ch, 1])),
    ?assertMatch({error, {bad_argument, _}}, py:channel(#{max => 0})),
    ?assertMatch({error, {bad_argument, _}}, py:channel(#{max => 1 bsl 70})),
    ?assertMatch({error, {bad_argument, <<"not a channel", _/binary>>}}, py:channel_send(make_ref(), 1)),
    ?assertMatch({error, {bad_argument, _}}, py:channel_send(Ch, fun() -> ok end)),
    ?assertMatch({error, {bad_argument, <<"not a channel", _/binary>>}}, py:channel_close(foo)),
    %% keys that are one key in Python: refused at the send, not lost at recv
    {ok, Ch2} = py:channel(),
    ?assertMatch({error, {bad_argument, <<"two map keys are the same key in Python: 'a'">>}},
                 py:channel_send(Ch2, #{a => 1, <<"a">> => 2})),
    [?assertMatch({error, {bad_argument, <<"two map keys are the same key in Python", _/binary>>}},
                  py:channel_send(Ch2, M))
     || M <- [#{1 => x, 1.0 => y}, #{true => x, 1 => y}, #{none => x, nil => y},
              #{{a, 1} => x, {<<"a">>, 1.0} => y}]],
    ?assertMatch({error, {bad_argument, <<"two map keys are the same key in Python: 10000000000000000000">>}},
                 py:channel_send(Ch2, #{10000000000000000000 => a, 1.0e19 => b})),
    %% keys distinct in Python pass
    ok = py:channel_send(Ch2, #{a => 1, <<"b">> => 2, 1 => x, 2.5 => y, {a, 1} => z, {a, 2} => w}),
    ?assertEqual({ok, {<<"got">>, #{<<"a">> => 1, <<"b">> => 2, 1 => <<"x">>, 2.5 => <<"y">>,
                                    {<<"a">>, 1} => <<"z">>, {<<"a">>, 2} => <<"w">>}}},
                 py:call('__main__', recv_one, [Ch2, 1])),
    %% a channel is a handle: copies are the channel itself, a pickle its id
    ?assertEqual({ok, [true, true, true]},
                 py:eval(<<"[__import__('copy').copy(c) is c, __import__('copy').deepcopy([c])[0] is c, "
                           "__import__('pickle').loads(__import__('pickle').dumps(c))._id == c._id]">>, #{c => Ch2})),
    ok = py_context_router:unbind_context().

%% A channel whose last Erlang copy is gone (its owner exited) is closed: a
%% Python reader waiting on it drains what was queued and ends.
channel_closed_by_gc(_) ->
    ok = py:exec(py:context(2), <<"def drain(ch):\n"
                                  "    erlang.state_set('drained', sum(1 for _ in ch))\n">>),
    py:state_remove(<<"drained">>),
    Owner = spawn(fun() ->
        ok = py_context_router:bind_context(py:context(2)),
        {ok, Ch} = py:channel(),
        ok = py:channel_send(Ch, 1),
        ok = py:channel_send(Ch, 2),
        ok = py:cast('__main__', drain, [Ch]),
        receive stop -> ok end
    end),
    timer:sleep(100),
    exit(Owner, kill),
    ok = py_test_util:wait_until(fun() -> py:state_fetch(<<"drained">>) =:= {ok, 2} end, 30000).

%% A channel lives while something holds it: an Erlang copy, a request on its
%% way, a Python object. Closed with terms queued and held by nothing, it is
%% freed, queue and all (it used to stay for the life of the node); held by
%% Python, it stays until Python lets it go, and Python can drain it.
channels_closed_undrained_are_freed(_) ->
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"def keep(ch):\n    global kept\n    kept = ch\n">>),
    Channels = fun() -> maps:get(channels, py:info()) end,
    %% Channels of earlier tests may still be going away meanwhile (the count
    %% can only fall): every check waits for at most its bound.
    C0 = Channels(),
    Owned = fun(F) -> {Pid, Mon} = spawn_monitor(F),
                      receive {'DOWN', Mon, process, Pid, Why} -> normal = Why end
            end,
    Owned(fun() ->
              [begin
                   {ok, Ch} = py:channel(),
                   ok = py:channel_send(Ch, binary:copy(<<"a">>, 1000)),
                   ok = py:channel_close(Ch)
               end || _ <- lists:seq(1, 100)],
              ?assert(Channels() >= 100)
          end),
    %% the owner and the channels' last copies are gone: so are the channels
    ok = py_test_util:wait_until(fun() -> Channels() =< C0 end, 30000),
    C1 = Channels(),
    Owned(fun() ->
              {ok, Ch} = py:channel(),
              ok = py:channel_send(Ch, 1),
              ok = py:channel_send(Ch, 2),
              {ok, none} = py:call(Ctx, '__main__', keep, [Ch]),
              ok = py:channel_close(Ch)
          end),
    %% held by Python alone: kept, and drained there
    ?assertEqual({ok, [1, 2]}, py:eval(Ctx, <<"list(kept)">>)),
    ok = py:exec(Ctx, <<"del kept\n">>),
    ok = py_test_util:wait_until(fun() -> Channels() =< C1 end, 30000).

%% A channel closed, and its last Erlang copy dropped, while the request that
%% carries it to Python waits in its context's queue: the request holds it, so
%% Python still drains all that was sent.
channel_closed_on_its_way_is_drained(_) ->
    Ctx = py:context(2),
    ok = py:exec(Ctx, <<"def wait(gate):\n    gate.recv()\n"
                        "def drain(ch):\n    erlang.state_set('drained_late', list(ch))\n">>),
    py:state_remove(<<"drained_late">>),
    {ok, Gate} = py:channel(),
    {Pid, Mon} = spawn_monitor(fun() ->
        ok = py_context_router:bind_context(Ctx),
        ok = py:cast('__main__', wait, [Gate]),
        {ok, Ch} = py:channel(),
        [ok = py:channel_send(Ch, N) || N <- [1, 2, 3]],
        ok = py:cast('__main__', drain, [Ch]),
        ok = py:channel_close(Ch)
    end),
    receive {'DOWN', Mon, process, Pid, Why} -> normal = Why end,
    %% The sender and its copy of the channel are gone; the context is still
    %% held by wait/1, with drain/1 queued behind it.
    ?assertEqual({error, not_found}, py:state_fetch(<<"drained_late">>)),
    ok = py:channel_send(Gate, go),
    ok = py_test_util:wait_until(fun() -> py:state_fetch(<<"drained_late">>) =/= {error, not_found} end, 30000),
    ?assertEqual({ok, [1, 2, 3]}, py:state_fetch(<<"drained_late">>)).

%% py:interrupt/1 reaches Python waiting in Channel.recv (outside Python,
%% with no bytecode running: it used to wait on until the caller's timeout).
channel_recv_interrupted(_) ->
    Ctx = py:context(2),
    ok = py:exec(Ctx, <<"def wait_on(ch):\n    erlang.state_set('recv_waiting', 1)\n    return ch.recv()\n">>),
    py:state_remove(<<"recv_waiting">>),
    {ok, Ch} = py:channel(),
    Self = self(),
    spawn_link(fun() ->
        ok = py_test_util:wait_until(fun() -> py:state_fetch(<<"recv_waiting">>) =:= {ok, 1} end, 30000),
        Self ! {interrupted, py:interrupt(Ctx)}
    end),
    ?assertMatch({error, {'KeyboardInterrupt', _}},
                 py:call(Ctx, '__main__', wait_on, [Ch], #{timeout => 60000})),
    receive {interrupted, ok} -> ok end,
    %% the context serves again, and the channel still works
    ok = py:channel_send(Ch, 7),
    ?assertEqual({ok, 7}, py:call(Ctx, '__main__', wait_on, [Ch])).

%% glibc's malloc_trim(0): free memory of every arena back to the OS (a no-op
%% where the C library has none).
trim_malloc() ->
    {ok, _} = py:eval(py:context(main), <<"(lambda c: getattr(c, 'malloc_trim', lambda n: 0)(0))"
                                          "(__import__('ctypes').CDLL(None))">>),
    ok.

rss_kb() ->
    py_test_util:rss() div 1024.
