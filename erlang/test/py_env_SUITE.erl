%% What every context gets from the application environment (python_path,
%% imports, preload_code), and where Python's output goes: a request's print to
%% its caller's group leader, anything else to logger.
-module(py_env_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-compile([export_all, nowarn_export_all]).

all() ->
    [print_reaches_the_group_leader, print_in_nested_and_timed_out_calls, print_between_callbacks_keeps_order,
     print_outside_a_request_goes_to_logger,
     app_env_reaches_every_context, invalid_settings_stop_the_start,
     logging_reaches_logger, logging_tight_loop_is_bounded, logs_reach_the_default_handler].

init_per_suite(Config) ->
    py_test_util:start_app(Config, #{contexts => 2}).

end_per_suite(_Config) ->
    py_test_util:stop_app().

%%% Output

print_reaches_the_group_leader(_) ->
    Out = py_test_util:with_group_leader(fun() ->
        ok = py:exec(<<"print('hello', 42)\nimport sys\nsys.stderr.write('oops\\n')\n">>),
        {ok, none} = py:call(builtins, print, [<<"from a call">>]),
        {ok, _} = py:eval(py:context(main), <<"print('on main') or 1">>)
    end),
    ?assertEqual(<<"hello 42\noops\nfrom a call\non main\n">>, Out),
    %% back to back, each call's output comes before its result and none is
    %% left behind (a reply taken while polling for it once skipped the
    %% output queued ahead of it)
    Many = py_test_util:with_group_leader(fun() ->
        [{ok, I} = py:eval(<<"print(i) or i">>, #{i => I}) || I <- lists:seq(1, 300)],
        receive Left -> ct:fail({left_in_mailbox, Left}) after 0 -> ok end
    end),
    ?assertEqual(iolist_to_binary([[integer_to_binary(I), $\n] || I <- lists:seq(1, 300)]), Many).

%% Output of a nested call (Python → Erlang → Python) reaches the same group
%% leader; a call that timed out leaves nothing behind in the mailbox.
print_in_nested_and_timed_out_calls(_) ->
    ok = py:register_function(py_env_nested, fun([X]) ->
        {ok, none} = py:call(builtins, print, [<<"nested ", X/binary>>]),
        X
    end),
    Out = py_test_util:with_group_leader(fun() ->
        {ok, <<"x">>} = py:eval(<<"erlang.call('py_env_nested', 'x')">>),
        {error, timeout} = py:eval(<<"[print('t', i) for i in range(3)] and __import__('time').sleep(0.3)">>, #{}, 50),
        timer:sleep(500),
        receive {py_output, _, _, _} = M -> ct:fail({stale, M}) after 0 -> ok end
    end),
    ?assertMatch(<<"nested x\n", _/binary>>, Out),
    ok = py:unregister_function(py_env_nested).

%% A loop of callbacks with output between them: after each callback the
%% caller polls for what comes next (py:polled/3) and must still print
%% Python's lines and run the callbacks in the order Python made them, and
%% leave nothing in the mailbox.
print_between_callbacks_keeps_order(_) ->
    ok = py:register_function(py_env_say, fun([I]) -> io:put_chars(["cb ", integer_to_list(I), "\n"]), I end),
    Out = py_test_util:with_group_leader(fun() ->
        {ok, 124750} = py:eval(<<"sum([print('py', i) or erlang.call('py_env_say', i) for i in range(500)])">>),
        receive Left -> ct:fail({left_in_mailbox, Left}) after 0 -> ok end
    end),
    ?assertEqual(iolist_to_binary([io_lib:format("py ~b~ncb ~b~n", [I, I]) || I <- lists:seq(0, 499)]), Out),
    ok = py:unregister_function(py_env_say).

print_outside_a_request_goes_to_logger(_) ->
    ok = logger:add_handler(py_env_capture, ?MODULE, #{config => #{pid => self()}}),
    try
        ok = py:exec(<<"import threading\n"
                       "t = threading.Thread(target=lambda: print('from a thread'))\n"
                       "t.start(); t.join()\n">>),
        receive
            {logged, Msg, #{domain := [erlang_python, python_output]}} ->
                ?assertNotEqual(nomatch, string:find(Msg, "from a thread"))
        after 5000 -> ct:fail(nothing_logged)
        end
    after
        logger:remove_handler(py_env_capture)
    end.

%% logger handler callback for the tests: forwards each event to the test
log(#{msg := {Format, Args}, meta := Meta, level := Level}, #{config := #{pid := Pid}}) when is_list(Format) ->
    Pid ! {logged, lists:flatten(io_lib:format(Format, Args)), Meta},
    Pid ! {logged_level, Level, Meta};
log(_, _) ->
    ok.

%%% Logging

logging_reaches_logger(_) ->
    ok = py:configure_logging(#{level => debug}),
    ok = logger:add_handler(py_env_capture, ?MODULE, #{config => #{pid => self()}}),
    try
        Everywhere = [py:context(main) | py_context_router:contexts()],
        [ok = py:exec(C, <<"import logging\nlogging.getLogger('app.mod').warning('hello %s', 'x')\n">>) || C <- Everywhere],
        Got = [receive {logged, "hello x", #{domain := [erlang_python, python_logging]} = M} -> M
               after 5000 -> ct:fail({not_logged, C})
               end || C <- Everywhere],
        [?assertMatch(#{python_logger := <<"app.mod">>, line := 2, file := <<"<erlang>">>}, M) || M <- Got],
        ?assertEqual([0 | lists:seq(1, length(Everywhere) - 1)], lists:sort([maps:get(context, M) || M <- Got])),
        %% exc_info carries the traceback; the level is mapped
        ok = py:exec(<<"import logging\ntry:\n    1/0\nexcept ZeroDivisionError:\n    logging.getLogger('a').exception('boom')\n">>),
        receive
            {logged_level, error, #{python_logger := <<"a">>, traceback := TB}} ->
                ?assertNotEqual(nomatch, binary:match(TB, <<"ZeroDivisionError">>))
        after 5000 -> ct:fail(no_exception_record)
        end,
        %% a record that cannot be formatted does not break the logging call
        ?assertEqual(ok, py:exec(<<"import logging\nlogging.getLogger('b').warning('%d', 'not a number')\n">>)),
        receive {logged, Bad, #{python_logger := <<"b">>}} -> ?assertNotEqual(nomatch, string:find(Bad, "unformattable"))
        after 5000 -> ct:fail(no_bad_record)
        end,
        %% a context started afterwards logs too
        {ok, _} = py_context_router:start(#{contexts => 3}),
        ok = py:exec(py:context(3), <<"import logging\nlogging.getLogger('late').error('later')\n">>),
        receive {logged, "later", #{python_logger := <<"late">>}} -> ok after 5000 -> ct:fail(late_context_not_logged) end
    after
        logger:remove_handler(py_env_capture),
        {ok, _} = py_context_router:start(#{contexts => 2})
    end.

%% 100,000 records from a tight loop: Python does not wait, and no more than
%% the bound is ever queued for logger (the rest are dropped and counted).
logging_tight_loop_is_bounded(_) ->
    ok = py:configure_logging(#{level => info}),
    Server = whereis(py_logging),
    Self = self(),
    Sampler = spawn_link(fun() -> sample(Server, Self, 0) end),
    {T, ok} = timer:tc(fun() -> py:exec(<<"import logging\nlog = logging.getLogger('loop')\n"
                                          "for i in range(100000):\n    log.warning('record %d', i)\n">>) end),
    Sampler ! stop,
    Max = receive {max_queue, M} -> M after 5000 -> ct:fail(no_sample) end,
    Dropped = maps:get(log_dropped, py:load()),
    ct:pal("100,000 records in ~p ms; largest py_logging queue ~p; dropped so far ~p", [T div 1000, Max, Dropped]),
    ?assert(Max =< 10000 + 100),
    ?assert(is_integer(Dropped)),
    ok = py_test_util:wait_until(fun() -> element(2, process_info(Server, message_queue_len)) =:= 0 end, 60000).

sample(Server, Owner, Max) ->
    {message_queue_len, Q} = process_info(Server, message_queue_len),
    receive stop -> Owner ! {max_queue, max(Q, Max)}
    after 1 -> sample(Server, Owner, max(Q, Max))
    end.

%%% Application environment

app_env_reaches_every_context(Config) ->
    Dir = filename:join(?config(priv_dir, Config), "pypath"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    ok = file:write_file(filename:join(Dir, "py_env_mod.py"), <<"VALUE = 'from python_path'\n">>),
    with_env([{python_path, [Dir]}, {imports, [py_env_mod, json]},
              {preload_code, <<"PRELOADED = 40 + 2\nimport py_env_mod\n">>}],
        fun() ->
            Everywhere = [py:context(main) | py_context_router:contexts()],
            [?assertEqual({ok, 42}, py:eval(C, <<"PRELOADED">>)) || C <- Everywhere],
            [?assertEqual({ok, <<"from python_path">>}, py:eval(C, <<"py_env_mod.VALUE">>)) || C <- Everywhere],
            [?assertEqual({ok, true}, py:eval(C, <<"'json' in __import__('sys').modules">>)) || C <- Everywhere],
            ?assertEqual({ok, list_to_binary(Dir)}, py:eval(py:context(1), <<"__import__('sys').path[0]">>)),
            %% contexts started later get it too, and a replaced one again
            {ok, _} = py_context_router:start(#{contexts => 3}),
            ok = py:exec(py:context(3), <<"PRELOADED = 'changed'">>),
            ?assertEqual({ok, 42}, py:eval(py:context(2), <<"PRELOADED">>)),
            {ok, _} = py_context_router:start(#{contexts => 3}),
            ?assertEqual({ok, 42}, py:eval(py:context(3), <<"PRELOADED">>))
        end).

invalid_settings_stop_the_start(_) ->
    ok = application:stop(erlang_python),
    try
        [begin
             [application:set_env(erlang_python, K, V) || {K, V} <- Env],
             R = application:start(erlang_python),
             [application:unset_env(erlang_python, K) || {K, _} <- Env],
             ?assertMatch({error, {{invalid_config, Key, _}, _}}, R)
         end || {Key, Env} <- [{preload_code, [{preload_code, <<"raise ValueError('nope')">>}]},
                               {preload_code, [{preload_code, 42}]},
                               {imports, [{imports, [no_such_module_here]}]},
                               {python_path, [{python_path, not_a_list}]}]]
    after
        {ok, _} = application:ensure_all_started(erlang_python),
        {ok, _} = py_context_router:start(#{contexts => 2})
    end,
    ?assertEqual({ok, 2}, py:eval(<<"1 + 1">>)).

%%% Helpers

%% Runs F in a process whose group leader collects what is written to it;
%% returns the text.

%% Restarts the application with Env set, runs F, then restores and restarts.
with_env(Env, F) ->
    ok = application:stop(erlang_python),
    [application:set_env(erlang_python, K, V) || {K, V} <- Env],
    try
        {ok, _} = application:ensure_all_started(erlang_python),
        F()
    after
        ok = application:stop(erlang_python),
        [application:unset_env(erlang_python, K) || {K, _} <- Env],
        {ok, _} = application:ensure_all_started(erlang_python),
        {ok, _} = py_context_router:start(#{contexts => 2})
    end.

%%% The default handler

%% OTP's default handler logs only events with no domain or OTP's own, so
%% erlang_python's events (domain `[erlang_python | _]') were dropped on a
%% node left with the default configuration. The application adds a filter
%% passing them to that handler while it runs. Checked on a fresh node (whose
%% default handler is OTP's, whatever this one's is): a handler given the same
%% filters gets them only while the application runs there, and not with
%% `logger_default_handler' set to false.
logs_reach_the_default_handler(_) ->
    Dist = case node() of
               nonode@nohost ->
                   _ = os:cmd("epmd -daemon"),
                   {ok, _} = net_kernel:start([list_to_atom("py_env_ct_" ++ os:getpid()), shortnames]),
                   true;
               _ ->
                   false
           end,
    Paths = lists:usort([filename:dirname(code:which(M)) || M <- [py, ?MODULE]]),
    {ok, Peer, Node} = peer:start(#{name => peer:random_name(py_env), wait_boot => 60000,
                                   args => lists:append([["-pa", P] || P <- Paths])}),
    try
        %% before the application starts: OTP's filters drop our domain
        ?assertEqual([marker], logged_on(Node)),
        {ok, _} = erpc:call(Node, application, ensure_all_started, [erlang_python], 120000),
        ?assertEqual([ours, marker], logged_on(Node)),
        %% a real event: a cast that raised
        probe(Node),
        ok = erpc:call(Node, py, cast, [math, sqrt, [-1]]),
        receive
            {logged, Msg, #{domain := [erlang_python]}} ->
                ?assertNotEqual(nomatch, string:find(Msg, "math domain error"))
        after 30000 -> ct:fail(cast_failure_not_logged)
        end,
        %% the filter goes with the application
        ok = erpc:call(Node, application, stop, [erlang_python]),
        ?assertEqual([marker], logged_on(Node)),
        %% and is not added when the setting says so
        ok = erpc:call(Node, application, set_env, [erlang_python, logger_default_handler, false]),
        {ok, _} = erpc:call(Node, application, ensure_all_started, [erlang_python], 120000),
        ?assertEqual([marker], logged_on(Node)),
        ok = erpc:call(Node, application, stop, [erlang_python])
    after
        peer:stop(Peer),
        Dist andalso net_kernel:stop()
    end.

%% Which of two warnings, one with our domain then one with none, a handler
%% with the filters of `Node''s default handler gets (in the order logged).
logged_on(Node) ->
    probe(Node),
    ok = erpc:call(Node, fun() ->
        %% a process of that node's own (the default handler drops events
        %% of processes whose group leader is remote)
        group_leader(whereis(user), self()),
        ok = logger:warning("py_env ours", [], #{domain => [erlang_python]}),
        logger:warning("py_env marker", [], #{})
    end),
    got_until_marker([]).

got_until_marker(Acc) ->
    receive
        {logged, "py_env ours", _} -> got_until_marker([ours | Acc]);
        {logged, "py_env marker", _} -> lists:reverse([marker | Acc])
    after 10000 -> ct:fail({no_marker, Acc})
    end.

%% A handler on `Node' with the filters of its default handler, forwarding
%% what passes them to this process.
probe(Node) ->
    Self = self(),
    ok = erpc:call(Node, fun() ->
        {ok, #{filters := F, filter_default := D}} = logger:get_handler_config(default),
        _ = logger:remove_handler(py_env_probe),
        logger:add_handler(py_env_probe, ?MODULE, #{filters => F, filter_default => D, config => #{pid => Self}})
    end).
