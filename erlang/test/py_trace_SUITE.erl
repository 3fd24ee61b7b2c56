%% Request tracing: spans and slow-call warnings reach Erlang's logger.
-module(py_trace_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-compile([export_all, nowarn_export_all]).

all() ->
    [off_by_default, debug_shows_requests, slow_calls_warned, bad_settings].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    #{level := Primary} = logger:get_primary_config(),
    ok = logger:set_primary_config(level, all),
    ok = logger:add_handler(py_trace_test, ?MODULE,
                            #{level => all, config => #{to => self()},
                              filter_default => stop,
                              filters => [{ours, {fun logger_filters:domain/2, {log, sub, [erlang_python]}}}]}),
    [{primary_level, Primary} | Config].

end_per_suite(Config) ->
    logger:remove_handler(py_trace_test),
    logger:set_primary_config(level, ?config(primary_level, Config)),
    ok = application:stop(erlang_python).

init_per_testcase(_, Config) ->
    %% the handler sends to the process that added it: re-point it at this one
    ok = logger:update_handler_config(py_trace_test, config, #{to => self()}),
    Config.

end_per_testcase(_, _Config) ->
    ok = py_trace:set_level(none),
    ok = py_trace:set_slow_call_ms(1000).

%% logger handler callback: forwards events to the test process
log(Event, #{config := #{to := To}}) ->
    To ! {logged, Event}.

flush() ->
    receive {logged, _} -> flush() after 0 -> ok end.

%% the next logged event whose metadata matches Pred
next(Pred) ->
    receive
        {logged, #{meta := Meta} = E} ->
            case Pred(Meta) of
                true -> E;
                false -> next(Pred)
            end
    after 10000 -> ct:fail(no_log_event)
    end.

off_by_default(_) ->
    ?assertEqual(none, py_trace:level()),
    flush(),
    [{ok, 4.0} = py:call(math, sqrt, [16]) || _ <- lists:seq(1, 20)],
    {ok, _} = py:call(time, sleep, [0.01]),
    receive {logged, E} -> ct:fail({unexpected, E}) after 300 -> ok end.

debug_shows_requests(_) ->
    ok = py_trace:set_level(debug),
    ?assertEqual(debug, py_trace:level()),
    flush(),
    Me = list_to_binary(pid_to_list(self())),
    {ok, 4.0} = py:call(math, sqrt, [16]),
    #{level := debug, meta := M} =
        next(fun(M) -> maps:get(caller, M, none) =:= Me andalso maps:get(function, M, none) =:= <<"sqrt">> end),
    ?assertEqual(<<"math">>, maps:get(module, M)),
    ?assert(is_integer(maps:get(duration_us, M))),
    ?assertEqual(<<"Call">>, maps:get(op, M)),
    %% eval: the code stands for the function
    {ok, 2} = py:eval(<<"1 + 1">>),
    #{meta := M2} = next(fun(X) -> maps:get(op, X, none) =:= <<"Eval">> andalso maps:get(caller, X, none) =:= Me end),
    ?assertEqual(<<"1 + 1">>, maps:get(function, M2)),
    %% back to none: nothing more
    ok = py_trace:set_level(none),
    flush(),
    {ok, 4.0} = py:call(math, sqrt, [16]),
    receive {logged, E} -> ct:fail({unexpected, E}) after 300 -> ok end.

slow_calls_warned(_) ->
    ok = py_trace:set_level(warning),
    ok = py_trace:set_slow_call_ms(50),
    flush(),
    Me = list_to_binary(pid_to_list(self())),
    {ok, none} = py:call(time, sleep, [0.2]),
    #{level := warning, meta := M} = next(fun(X) -> maps:get(caller, X, none) =:= Me end),
    ?assertEqual(<<"time">>, maps:get(module, M)),
    ?assertEqual(<<"sleep">>, maps:get(function, M)),
    ?assert(maps:get(duration_us, M) >= 200000),
    %% at warning, request spans (debug) are not logged
    {ok, 4.0} = py:call(math, sqrt, [16]),
    receive {logged, #{level := debug} = E} -> ct:fail({unexpected, E}) after 300 -> ok end.

bad_settings(_) ->
    ?assertEqual({error, {bad_level, loud}}, py_trace:set_level(loud)),
    ?assertEqual({error, {bad_slow_call_ms, -1}}, py_trace:set_slow_call_ms(-1)),
    ?assertEqual(none, py_trace:level()).
