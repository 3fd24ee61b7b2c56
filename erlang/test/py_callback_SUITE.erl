%% Erlang functions called from Python, and reentrant Python -> Erlang -> Python chains.
-module(py_callback_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-compile([export_all, nowarn_export_all]).

all() ->
    [seed_compute_via_python, seed_level_chain_10, call_forms_from_python, callback_raises,
     unknown_function, nesting_depth_50, into_another_context, concurrent_chains_100,
     suspended_context_serves_only_its_chain, caller_timeout_during_callback,
     nested_request_timeout_interrupts_it, callback_result_that_cannot_cross].

init_per_suite(Config) ->
    py_test_util:start_app(Config, #{contexts => 2}).

end_per_suite(_Config) ->
    py_test_util:stop_app().

%% The seed's example, as written (plus the complex_compute it relies on).
seed_compute_via_python(_) ->
    ok = py_context_router:bind_context(py:context(1)),
    %% Register an Erlang function that calls Python
    py:register_function(compute_via_python, fun([X]) ->
        {ok, Result} = py:call('__main__', complex_compute, [X]),
        Result * 2  %% Erlang post-processing
    end),
    ok = py:exec(<<"
def complex_compute(x):
    return x * x
">>),
    %% Python code that uses the callback
    py:exec(<<"
def process(x):
    from erlang import call
    # Calls Erlang, which calls Python's complex_compute
    result = call('compute_via_python', x)
    return result + 1
">>),
    ?assertEqual({ok, 2 * 49 + 1}, py:call('__main__', process, [7])),
    ok = py_context_router:unbind_context().

%% The seed's level/next_level example, as written: {ok, 10}.
seed_level_chain_10(_) ->
    %% Each level alternates between Erlang and Python
    py:register_function(level, fun([N, Max]) ->
        case N >= Max of
            true -> N;
            false ->
                {ok, Result} = py:call('__main__', next_level, [N + 1, Max]),
                Result
        end
    end),
    py:exec(<<"
def next_level(n, max):
    from erlang import call
    return call('level', n, max)

def start(max):
    from erlang import call
    return call('level', 1, max)
">>),
    %% Test 10 levels of nesting
    {ok, 10} = py:call('__main__', start, [10]).

call_forms_from_python(_) ->
    ok = py:register_function(add, fun(A, B) -> A + B end),
    ok = py:register_function(<<"upper">>, string, uppercase),
    ok = py:exec(<<"import erlang\nfrom erlang import add\n">>),
    ?assertEqual({ok, 5}, py:eval(<<"add(2, 3)">>)),
    ?assertEqual({ok, 7}, py:eval(<<"erlang.add(3, 4)">>)),
    ?assertEqual({ok, 9}, py:eval(<<"erlang.call('add', 4, 5)">>)),
    ?assertEqual({ok, <<"ABC">>}, py:eval(<<"erlang.upper('abc')">>)),
    ok = py:register_function(whoami, fun([]) -> self() end),
    ?assertEqual({ok, self()}, py:eval(<<"erlang.whoami()">>)).

callback_raises(_) ->
    ok = py:register_function(boom, fun([X]) -> error({bad_thing, X}) end),
    ok = py:exec(<<"import erlang\ndef try_boom():\n    try:\n        erlang.boom(1)\n    except erlang.ErlangError as e:\n        return 'caught: ' + str(e)\n">>),
    {ok, Msg} = py:call('__main__', try_boom, []),
    ?assertMatch(<<"caught: error: {bad_thing,1}">>, Msg),
    ?assertMatch({error, {'ErlangError', <<"throw: oops">>}},
                 begin ok = py:register_function(thrower, fun(_) -> throw(oops) end),
                       py:eval(<<"__import__('erlang').thrower()">>) end).

unknown_function(_) ->
    ok = py:register_function(temp, fun(_) -> 1 end),
    ?assertEqual({ok, 1}, py:eval(<<"__import__('erlang').temp()">>)),
    ok = py:unregister_function(temp),
    {error, {'UnknownFunction', Msg}} = py:eval(<<"__import__('erlang').temp()">>),
    ?assertNotEqual(nomatch, binary:match(Msg, <<"temp">>)),
    ?assertEqual({ok, true}, py:eval(<<"issubclass(__import__('erlang').UnknownFunction, LookupError)">>)).

nesting_depth_50(_) ->
    ok = py_context_router:bind_context(py:context(2)),
    ok = py:register_function(down, fun([N]) ->
        case N of
            0 -> 0;
            _ -> {ok, R} = py:call('__main__', py_down, [N - 1]), R + 1
        end
    end),
    ok = py:exec(<<"import erlang\ndef py_down(n):\n    return erlang.down(n) + 1\n">>),
    %% 50 Python levels and 50 Erlang levels: py_down(n) = py_down(n - 1) + 2, py_down(0) = 1
    ?assertEqual({ok, 99}, py:call('__main__', py_down, [49])),
    ok = py_context_router:unbind_context().

into_another_context(_) ->
    ok = py:exec(py:context(2), <<"def square(x):\n    return x * x\n">>),
    ok = py:register_function(square_elsewhere, fun([X]) ->
        {ok, R} = py:call(py:context(2), '__main__', square, [X]), R
    end),
    ok = py:exec(py:context(1), <<"import erlang\ndef via(x):\n    return erlang.square_elsewhere(x) + 1\n">>),
    ?assertEqual({ok, 145}, py:call(py:context(1), '__main__', via, [12])),
    %% and into the main interpreter
    ok = py:register_function(main_len, fun([S]) -> {ok, N} = py:call(py:context(main), builtins, len, [S]), N end),
    ?assertEqual({ok, 5}, py:eval(py:context(1), <<"__import__('erlang').main_len('hello')">>)).

concurrent_chains_100(_) ->
    ok = py:register_function(twice, fun([Ctx, X]) ->
        {ok, R} = py:call({py_context, Ctx}, '__main__', plus_one, [X]), 2 * R
    end),
    [ok = py:exec(C, <<"import erlang\ndef plus_one(x):\n    return x + 1\n"
                       "def chain(ctx, x):\n    return erlang.twice(ctx, x)\n">>)
     || C <- py_context_router:contexts()],
    Self = self(),
    Pids = [spawn_link(fun() ->
                C = I rem 2 + 1,
                Self ! {chain, self(), I, py:call({py_context, C}, '__main__', chain, [C, I])}
            end) || I <- lists:seq(1, 100)],
    [receive {chain, P, I, R} -> ?assertEqual({ok, 2 * (I + 1)}, R)
     after 60000 -> ct:fail(chain_stuck) end || P <- Pids].

%% While context 1 waits for a callback, a call from an unrelated process to
%% context 1 waits too (it is not served half-way through someone's chain), and
%% is served once the chain ends.
suspended_context_serves_only_its_chain(_) ->
    Self = self(),
    ok = py:register_function(hold, fun([]) ->
        Self ! {holding, self()},
        receive release -> ok end,
        {ok, V} = py:eval(py:context(1), <<"chain_state">>),
        V
    end),
    ok = py:exec(py:context(1), <<"import erlang\nchain_state = 'before'\n"
                                  "def held():\n    global chain_state\n    chain_state = 'inside'\n"
                                  "    r = erlang.hold()\n    chain_state = 'after'\n    return r\n">>),
    spawn_link(fun() -> Self ! {chain_done, py:call(py:context(1), '__main__', held, [])} end),
    Holder = receive {holding, H} -> H end,
    spawn_link(fun() -> Self ! {other, py:eval(py:context(1), <<"chain_state">>)} end),
    %% the other caller gets nothing while the chain is suspended
    receive {other, Early} -> ct:fail({served_mid_chain, Early}) after 300 -> ok end,
    Holder ! release,
    receive {chain_done, R} -> ?assertEqual({ok, <<"inside">>}, R) end,
    receive {other, V} -> ?assertEqual({ok, <<"after">>}, V) after 10000 -> ct:fail(other_stuck) end.

caller_timeout_during_callback(_) ->
    %% The caller runs the callback itself, so its 100 ms timeout is noticed when
    %% the callback returns (300 ms); Python then still works for 500 ms, so the
    %% caller is back waiting before any reply could come.
    ok = py:register_function(slow, fun([]) -> timer:sleep(300), 1 end),
    ok = py:exec(py:context(2), <<"import erlang, time\ndef calls_slow():\n    r = erlang.slow()\n    time.sleep(0.5)\n    return r\n">>),
    ?assertEqual({error, timeout}, py:call(py:context(2), '__main__', calls_slow, [], #{timeout => 100})),
    %% the context recovers and serves again
    ?assertEqual({ok, 2}, py:eval(py:context(2), <<"1 + 1">>)),
    %% and the reply that was suppressed never arrives
    receive Stray -> ct:fail({stray, Stray}) after 700 -> ok end.

%% A request nested in a chain (Python -> Erlang -> the same context) whose
%% own caller times out is interrupted (TimeoutError) as a request of its own
%% is: the code suspended under it gets the callback's answer at once, instead
%% of when the nested code ends (it used to run on, here for 30 s). The 2 s
%% timeout leaves the nested request time to start under load.
nested_request_timeout_interrupts_it(_) ->
    Ctx = py:context(2),
    ok = py:register_function(nested_spin, fun([Key]) -> py:call(Ctx, '__main__', spin_nested, [Key], #{timeout => 2000}) end),
    ok = py:exec(Ctx, <<"import erlang, time\n"
                        "def spin_nested(key):\n"
                        "    end = time.monotonic() + 30\n"
                        "    try:\n"
                        "        while time.monotonic() < end:\n"
                        "            time.sleep(0)\n"
                        "        erlang.state_set(key, 'ran out')\n"
                        "    except TimeoutError:\n"
                        "        erlang.state_set(key, 'interrupted')\n"
                        "        raise\n"
                        "def outer(key):\n"
                        "    return erlang.nested_spin(key), erlang.state_get(key)\n">>),
    Key = <<"nested_timed_out">>,
    py:state_remove(Key),
    ?assertEqual({ok, {{<<"error">>, <<"timeout">>}, <<"interrupted">>}},
                 py:call(Ctx, '__main__', outer, [Key], #{timeout => 120000})),
    %% nothing of the interruption reaches the next request
    ?assertEqual({ok, 2}, py:eval(Ctx, <<"1 + 1">>)),
    py:state_remove(Key).

callback_result_that_cannot_cross(_) ->
    ok = py:register_function(gives_ref, fun(_) -> make_ref() end),
    ?assertMatch({error, {'TypeError', _}}, py:eval(py:context(1), <<"__import__('erlang').gives_ref()">>)),
    ?assertEqual({ok, 2}, py:eval(py:context(1), <<"1 + 1">>)).
