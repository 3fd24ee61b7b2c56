%% Python reaching Erlang, the parts built so far: `erlang' bound in every
%% context's globals, `hasattr(erlang, Name)' true only for registered
%% functions, `erlang.whereis/1'; and sets crossing as lists.
-module(py_reach_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-compile([export_all, nowarn_export_all]).

all() ->
    [erlang_bound_everywhere, hasattr_only_when_registered, whereis_names, sets_as_lists,
     frame_builtins_see_the_context, reload_everywhere, callbacks_from_python_threads,
     send_from_a_thread, thread_callback_when_overloaded].

init_per_suite(Config) ->
    py_test_util:start_app(Config, #{contexts => 2}).

end_per_suite(_Config) ->
    py_test_util:stop_app().

everywhere() ->
    py_context_router:contexts() ++ [py:context(main)].

erlang_bound_everywhere(_) ->
    ok = py:state_store(<<"reach">>, 42),
    [?assertEqual({ok, 42}, py:eval(Ctx, <<"erlang.state_get('reach')">>)) || Ctx <- everywhere()],
    %% contexts started later too
    {ok, _} = py_context_router:start(#{contexts => 3}),
    ?assertEqual({ok, 42}, py:eval(py:context(3), <<"erlang.state_get('reach')">>)),
    {ok, _} = py_context_router:start(#{contexts => 2}).

hasattr_only_when_registered(_) ->
    Has = <<"hasattr(erlang, 'reach_fn')">>,
    [?assertEqual({ok, false}, py:eval(Ctx, Has)) || Ctx <- everywhere()],
    ok = py:register_function(reach_fn, fun([X]) -> X + 1 end),
    [?assertEqual({ok, true}, py:eval(Ctx, Has)) || Ctx <- everywhere()],
    ?assertEqual({ok, 2}, py:eval(<<"erlang.reach_fn(1)">>)),
    ok = py:unregister_function(reach_fn),
    [?assertEqual({ok, false}, py:eval(Ctx, Has)) || Ctx <- everywhere()],
    %% what an unregistered name raises is UnknownFunction, an AttributeError too
    ?assertMatch({error, {'UnknownFunction', _}}, py:eval(<<"erlang.reach_fn(1)">>)),
    ?assertEqual({ok, true}, py:eval(<<"issubclass(erlang.UnknownFunction, AttributeError)">>)),
    ?assertMatch({error, {'ImportError', _}}, py:exec(<<"from erlang import reach_fn">>)).

whereis_names(_) ->
    Sink = whereis(py_cast_sink),
    true = is_pid(Sink),
    [?assertEqual({ok, Sink}, py:eval(Ctx, <<"erlang.whereis('py_cast_sink')">>)) || Ctx <- everywhere()],
    ?assertEqual({ok, none}, py:eval(<<"erlang.whereis('no_such_registered_name')">>)),
    %% a name that is not an atom yet finds nothing and creates no atom
    Fresh = <<"never_an_atom_", (integer_to_binary(erlang:unique_integer([positive])))/binary>>,
    ?assertEqual({ok, none}, py:eval(<<"erlang.whereis(n)">>, #{n => Fresh})),
    ?assertError(badarg, binary_to_existing_atom(Fresh)),
    %% the pid it gives is a live erlang.Pid: a message reaches the process
    true = register(reach_test_proc, self()),
    ok = py:exec(<<"erlang.send(erlang.whereis('reach_test_proc'), ('hello', 1))">>),
    receive {<<"hello">>, 1} -> ok after 5000 -> ct:fail(no_message) end,
    unregister(reach_test_proc),
    ?assertMatch({error, {'TypeError', _}}, py:eval(<<"erlang.whereis(1)">>)),
    %% an erlang.Pid holds a pid, nothing else: any other term's external
    %% format (here a ref's, or a channel handle's) would come back to
    %% Erlang as that term
    {ok, Ch} = py:channel(),
    [?assertMatch({error, {'TypeError', _}}, py:eval(<<"erlang.Pid(e, 'x')">>, #{e => {'$bytes', term_to_binary(T)}}))
     || T <- [make_ref(), Ch, an_atom, <<"garbage">>]],
    ?assertMatch({error, {'TypeError', _}}, py:eval(<<"erlang.Pid(b'garbage', 'x')">>)),
    %% nor once built (its bytes replaced afterwards)
    ?assertMatch({error, {bad_result, _}},
                 py:eval(<<"(lambda p: (setattr(p, '_ext', e), p)[1])(erlang.whereis('py_cast_sink'))">>,
                         #{e => {'$bytes', term_to_binary(make_ref())}})),
    %% a real one still crosses both ways
    ?assertEqual({ok, self()}, py:eval(<<"p">>, #{p => self()})),
    %% erlang.call names a function by a str
    ?assertMatch({error, {'TypeError', _}}, py:eval(<<"erlang.call(123)">>)).

sets_as_lists(_) ->
    {ok, S} = py:eval(<<"{3, 1, 2}">>),
    ?assertEqual([1, 2, 3], lists:sort(S)),
    {ok, F} = py:eval(<<"frozenset(['a', 'b'])">>),
    ?assertEqual([<<"a">>, <<"b">>], lists:sort(F)),
    ?assertEqual({ok, #{<<"k">> => []}}, py:eval(<<"{'k': set()}">>)),
    {ok, [Inner]} = py:eval(<<"[{(1, 2)}]">>),
    ?assertEqual([{1, 2}], Inner).

%% Builtins that read their caller's frame work through py:call and see the
%% context's names (they failed with "frame does not exist").
frame_builtins_see_the_context(_) ->
    [begin
         ?assertEqual({ok, 2}, py:call(Ctx, builtins, eval, [<<"1 + 1">>])),
         ok = py:exec(Ctx, <<"frame_probe = 41">>),
         ?assertEqual({ok, 42}, py:call(Ctx, builtins, eval, [<<"frame_probe + 1">>])),
         ?assertEqual({ok, none}, py:call(Ctx, builtins, exec, [<<"set_by_exec = 'yes'">>])),
         ?assertEqual({ok, <<"yes">>}, py:eval(Ctx, <<"set_by_exec">>)),
         {ok, Names} = py:call(Ctx, builtins, dir, []),
         ?assert(lists:member(<<"frame_probe">>, Names)),
         ?assert(lists:member(<<"erlang">>, Names)),
         ?assertEqual({ok, true}, py:call(Ctx, builtins, eval, [<<"'frame_probe' in globals() and 'frame_probe' in vars()">>])),
         %% the namespace itself: the names whose values can cross (every
         %% context's globals hold modules, which cannot: the whole dict
         %% failed with unsupported_type)
         [begin
              {ok, #{} = G} = py:call(Ctx, builtins, F, []),
              ?assertEqual(41, maps:get(<<"frame_probe">>, G)),
              ?assertNot(maps:is_key(<<"erlang">>, G))
          end || F <- [globals, locals, vars]],
         ?assertMatch({ok, _}, py:call(Ctx, builtins, globals, [], #{return => ref})),
         %% an exception inside still comes back as one
         ?assertMatch({error, {'NameError', _}}, py:call(Ctx, builtins, eval, [<<"no_such_name">>])),
         %% eval with explicit globals is unchanged
         ?assertEqual({ok, 7}, py:call(Ctx, builtins, eval, [<<"a + b">>, #{a => 3, b => 4}]))
     end || Ctx <- everywhere()],
    %% the unbound form too
    ?assertEqual({ok, 2}, py:call(builtins, eval, [<<"1+1">>])).

%% py:reload/1 reaches every interpreter that imported the module, and only those.
reload_everywhere(Config) ->
    Dir = filename:join(?config(priv_dir, Config), "reload_mod"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Mod = "ep_reload_probe",
    File = filename:join(Dir, Mod ++ ".py"),
    ok = file:write_file(File, <<"VALUE = 1\n">>),
    AddPath = iolist_to_binary(["import sys\nif r'", Dir, "' not in sys.path:\n    sys.path.insert(0, r'", Dir, "')\n"]),
    [ok = py:exec(Ctx, AddPath) || Ctx <- everywhere()],
    Users = [py:context(1), py:context(main)],
    [?assertEqual({ok, 1}, py:call(Ctx, ep_reload_probe, 'VALUE.__int__', [])) || Ctx <- Users],
    %% a new size, so the cached bytecode is not taken for the new source
    ok = file:write_file(File, <<"VALUE = 222\n">>),
    ok = py:reload(ep_reload_probe),
    [?assertEqual({ok, 222}, py:call(Ctx, ep_reload_probe, 'VALUE.__int__', [])) || Ctx <- Users],
    %% context 2 never imported it (in subinterp mode it has its own modules)
    case py:execution_mode() of
        subinterp -> ?assertEqual({ok, false}, py:eval(py:context(2), <<"'ep_reload_probe' in __import__('sys').modules">>));
        _ -> ok
    end,
    ?assertEqual(ok, py:reload(never_imported_module_xyz)),
    ?assertMatch({error, {bad_argument, _}}, py:reload(<<255>>)).

%% erlang.call from threads Python started (a ThreadPoolExecutor of 8): each runs
%% in a process of the application, results correct.
callbacks_from_python_threads(_) ->
    Self = self(),
    ok = py:register_function(double_it, fun([X]) -> Self ! {ran_in, self()}, 2 * X end),
    Code = <<"def pool_calls(n):\n"
             "    from concurrent.futures import ThreadPoolExecutor\n"
             "    with ThreadPoolExecutor(8) as ex:\n"
             "        return list(ex.map(lambda i: erlang.double_it(i), range(n)))\n">>,
    [begin
         ok = py:exec(Ctx, Code),
         ?assertEqual({ok, [2 * I || I <- lists:seq(0, 99)]}, py:call(Ctx, '__main__', pool_calls, [100]))
     end || Ctx <- everywhere()],
    %% not in the calling process: nobody waits for those threads in Erlang
    receive {ran_in, P} -> ?assertNotEqual(self(), P) after 1000 -> ct:fail(no_callback) end,
    flush(),
    ok = py:unregister_function(double_it),
    %% and from a thread, an unknown name is still UnknownFunction
    ok = py:exec(<<"def unknown_from_thread():\n"
                   "    import threading\n"
                   "    out = []\n"
                   "    def run():\n"
                   "        try:\n"
                   "            erlang.call('not_registered_anywhere', 1)\n"
                   "        except erlang.UnknownFunction as e:\n"
                   "            out.append('unknown')\n"
                   "    t = threading.Thread(target=run)\n"
                   "    t.start()\n"
                   "    t.join()\n"
                   "    return out\n">>),
    ?assertEqual({ok, [<<"unknown">>]}, py:call('__main__', unknown_from_thread, [])),
    ok = py_test_util:wait_until(fun() -> py_semaphore:current() =:= 0 end).

flush() ->
    receive _ -> flush() after 0 -> ok end.

send_from_a_thread(_) ->
    ok = py:exec(<<"def send_later(pid):\n"
                   "    import threading\n"
                   "    t = threading.Thread(target=lambda: erlang.send(pid, ('from_thread', 7)))\n"
                   "    t.start()\n"
                   "    t.join()\n">>),
    {ok, none} = py:call('__main__', send_later, [self()]),
    receive {<<"from_thread">>, 7} -> ok after 5000 -> ct:fail(no_message) end.

%% Every permit taken (the request itself holds the only one): a thread's
%% erlang.call waits a bounded time, then raises an error naming the overload.
thread_callback_when_overloaded(_) ->
    ok = py:register_function(never_reached, fun(_) -> ok end),
    ok = py:exec(<<"def overloaded_thread():\n"
                   "    import threading\n"
                   "    out = []\n"
                   "    def run():\n"
                   "        try:\n"
                   "            erlang.never_reached()\n"
                   "            out.append('ran')\n"
                   "        except erlang.ErlangError as e:\n"
                   "            out.append(str(e))\n"
                   "    t = threading.Thread(target=run)\n"
                   "    t.start()\n"
                   "    t.join()\n"
                   "    return out\n">>),
    Max0 = py_semaphore:max_concurrent(),
    ok = py_semaphore:set_max_concurrent(1),
    try
        {ok, [Msg]} = py:call('__main__', overloaded_thread, []),
        ?assertMatch({match, _}, re:run(Msg, "overloaded"))
    after
        ok = py_semaphore:set_max_concurrent(Max0)
    end,
    ?assertEqual(0, py_semaphore:waiting()),
    ok = py:unregister_function(never_reached).
