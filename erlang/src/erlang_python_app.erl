%% @doc The erlang_python application: starts the Python side (initialising
%% CPython once per node) and the supervision tree.
-module(erlang_python_app).
-behaviour(application).
-export([start/2, prep_stop/1, stop/1, config_change/3, call_timeout/0]).

-define(START_TIMEOUT, 120000).
%% glibc's malloc as a Python process has it on its own, at most (see
%% set_malloc_thresholds/1): mmap threshold 32 MiB, trim threshold 64 MiB.
-define(MALLOC_THRESHOLDS, {32 bsl 20, 64 bsl 20}).
-define(CALL_TIMEOUT, {erlang_python, call_timeout}).
-define(DEFAULT_CALL_TIMEOUT, 30000).
%% Our filter on logger's default handler (see show_on_default_handler/1).
-define(LOG_FILTER, erlang_python).

-spec start(application:start_type(), term()) -> {ok, pid(), map()} | {error, term()}.
start(_Type, _Args) ->
    InRange = fun(N) -> is_integer(N) andalso N >= 1 andalso N =< 64 end,
    Positive = fun(N) -> is_integer(N) andalso N >= 1 end,
    Timeout = fun valid_timeout/1,
    maybe_start([config(num_executors, 4, InRange),
                 config(num_contexts, min(erlang:system_info(schedulers), 64), InRange),
                 config(max_concurrent, py_semaphore:default_max(), Positive),
                 config(call_timeout, ?DEFAULT_CALL_TIMEOUT, Timeout),
                 config(overload_wait, 1000, Timeout),
                 config(trace_level, none, fun py_trace:valid_level/1),
                 config(slow_call_ms, 1000, Timeout),
                 config(python_path, [], fun texts/1),
                 config(imports, [], fun names/1),
                 config(preload_code, <<>>, fun is_text/1),
                 config(pin_threads, false, fun is_boolean/1),
                 config(logger_default_handler, true, fun is_boolean/1),
                 config(max_terms, 10000000, fun(N) -> Positive(N) andalso N < 1 bsl 63 end),
                 config(reply_spin_us, 20, fun(N) -> is_integer(N) andalso N >= 0 andalso N =< 1000 end),
                 config(malloc_thresholds, ?MALLOC_THRESHOLDS, fun valid_malloc_thresholds/1)]).

maybe_start([{ok, Executors}, {ok, Contexts}, {ok, Max}, {ok, CallTimeout}, {ok, _}, {ok, _}, {ok, _},
             {ok, Path}, {ok, Imports}, {ok, Preload}, {ok, Pin}, {ok, ShowLogs}, {ok, MaxTerms}, {ok, SpinUs}, {ok, Malloc}]) ->
    keep_call_timeout(CallTimeout),
    set_malloc_thresholds(Malloc),
    keep_reply_spin(SpinUs),
    ok = py_nif:semaphore_set_max(Max),
    ok = py_nif:max_terms(MaxTerms),
    ok = py_nif:pin_threads(Pin),
    ok = py_nif:setup([text(P) || P <- Path], [text(M) || M <- Imports], text(Preload)),
    start_console(),
    case start_python(Executors, Contexts) of
        ok ->
            case erlang_python_sup:start_link() of
                {ok, Sup} -> {ok, Sup, #{log_filter => show_on_default_handler(ShowLogs)}};
                Other -> Other
            end;
        {error, {python_start_failed, Msg}} = E when is_binary(Msg) ->
            %% the Python side names the setting that failed: "preload_code: ..."
            case binary:split(Msg, <<": ">>) of
                [Key, Reason] when Key =:= <<"preload_code">>; Key =:= <<"imports">>; Key =:= <<"python_path">> ->
                    K = binary_to_atom(Key),
                    logger:error("erlang_python: ~p failed: ~ts", [K, Reason]),
                    {error, {invalid_config, K, Reason}};
                _ -> E
            end;
        {error, _} = E ->
            E
    end;
maybe_start(Configs) ->
    {error, {invalid_config, Key, Value}} = hd([E || {error, _} = E <- Configs]),
    logger:error("erlang_python: invalid value for ~p: ~p (expected ~ts)", [Key, Value, expected(Key)]),
    {error, {invalid_config, Key, Value}}.

%% @doc The default timeout of calls that name none (`call_timeout', ms). It is
%% read by every such call, so it is kept in a persistent term (no ETS lookup):
%% set at start and again when a release upgrade changes it; the application
%% environment (or the default) before the application started.
-spec call_timeout() -> timeout().
call_timeout() ->
    case persistent_term:get(?CALL_TIMEOUT, undefined) of
        undefined -> application:get_env(erlang_python, call_timeout, ?DEFAULT_CALL_TIMEOUT);
        T -> T
    end.

%% @private A release upgrade changed the environment: a new `call_timeout' is
%% kept (one that is not a timeout is refused, with a log line, and the current
%% one stays); a removed one gives the default back.
-spec config_change(Changed :: [{atom(), term()}], New :: [{atom(), term()}], Removed :: [atom()]) -> ok.
config_change(Changed, New, Removed) ->
    case lists:keyfind(call_timeout, 1, Changed ++ New) of
        {call_timeout, T} ->
            case valid_timeout(T) of
                true -> keep_call_timeout(T);
                false ->
                    logger:error("erlang_python: invalid value for call_timeout: ~p (expected ~ts); kept ~p",
                                 [T, expected(call_timeout), call_timeout()])
            end;
        false ->
            case lists:member(call_timeout, Removed) of
                true -> keep_call_timeout(?DEFAULT_CALL_TIMEOUT);
                false -> ok
            end
    end.

%% How long a synchronous call polls for its reply before blocking (see
%% py:spin_reply/1), in ns, kept in a persistent term: `reply_spin_us', or 0
%% (no polling) when the node may use one core only, where the polling would
%% keep the reply's own thread off it.
keep_reply_spin(Us) ->
    Cores = case erlang:system_info(logical_processors_available) of
                N when is_integer(N) -> N;
                unknown -> erlang:system_info(schedulers_online)
            end,
    Ns = case Cores > 1 of
             true -> Us * 1000;
             false -> 0
         end,
    persistent_term:put({erlang_python, reply_spin_ns}, Ns).

keep_call_timeout(T) ->
    case persistent_term:get(?CALL_TIMEOUT, undefined) of
        T -> ok;
        _ -> persistent_term:put(?CALL_TIMEOUT, T)
    end.

valid_timeout(T) ->
    T =:= infinity orelse (is_integer(T) andalso T >= 0).

-spec prep_stop(term()) -> term().
prep_stop(State) ->
    py_cluster:leave(),
    py_context_router:unpublish(),
    Tag = make_ref(),
    ok = py_nif:stop(Tag),
    receive {py_started, Tag, _} -> ok after ?START_TIMEOUT -> ok end,
    State.

-spec stop(term()) -> ok.
stop(#{log_filter := added}) ->
    _ = logger:remove_handler_filter(default, ?LOG_FILTER),
    ok;
stop(_State) ->
    ok.

%% OTP's default handler logs only the events with no domain or with OTP's
%% own (`[otp]', `[otp, sasl]'): ours (`[erlang_python | _]': a cast that
%% failed, Python's `logging', output outside a request, slow calls) would be
%% dropped there, never seen by a node left with the default configuration.
%% So, unless `logger_default_handler' is false, a filter passing them is
%% added to that handler while the application runs. A default handler that
%% logs what no filter matched (`filter_default => log'), or none at all, is
%% left alone; a filter of the user's that stops our domain still does (it
%% comes first).
show_on_default_handler(true) ->
    case logger:get_handler_config(default) of
        {ok, #{filter_default := stop, filters := Filters}} ->
            case lists:keymember(?LOG_FILTER, 1, Filters) of
                true ->
                    none;
                false ->
                    Ours = {fun logger_filters:domain/2, {log, sub, [erlang_python]}},
                    case logger:add_handler_filter(default, ?LOG_FILTER, Ours) of
                        ok -> added;
                        {error, _} -> none
                    end
            end;
        _ ->
            none
    end;
show_on_default_handler(false) ->
    none.

%% With a console build (ERLANG_PYTHON_CONSOLE=1), serve tokio-console on
%% `console_addr' (default 127.0.0.1:6669) before any actor starts.
start_console() ->
    Addr = application:get_env(erlang_python, console_addr, "127.0.0.1:6669"),
    case py_nif:console(unicode:characters_to_binary(Addr)) of
        ok -> logger:notice("erlang_python: tokio-console server on ~ts", [Addr]);
        {error, not_built} -> ok;
        {error, Msg} -> logger:warning("erlang_python: tokio-console server not started: ~ts", [Msg])
    end.

start_python(Executors, Contexts) ->
    Tag = make_ref(),
    ok = py_nif:start(Executors, Contexts, Tag),
    receive
        {py_started, Tag, ok} -> ok;
        {py_started, Tag, {error, Msg}} -> {error, {python_start_failed, Msg}}
    after ?START_TIMEOUT ->
        {error, {python_start_failed, timeout}}
    end.

expected(num_executors) -> "an integer from 1 to 64";
expected(num_contexts) -> "an integer from 1 to 64";
expected(max_concurrent) -> "a positive integer";
expected(max_terms) -> "a positive integer";
expected(trace_level) -> "none, error, warning, notice, info or debug";
expected(python_path) -> "a list of directories (strings or binaries)";
expected(imports) -> "a list of module names (atoms, strings or binaries)";
expected(preload_code) -> "Python source (a string or a binary)";
expected(pin_threads) -> "true or false";
expected(logger_default_handler) -> "true or false";
expected(malloc_thresholds) -> "keep, or {MmapBytes, TrimBytes}, each below 2147483648";
expected(reply_spin_us) -> "an integer of microseconds from 0 to 1000";
expected(_) -> "a non-negative integer of milliseconds or infinity".

valid_malloc_thresholds(keep) -> true;
valid_malloc_thresholds({Mmap, Trim}) ->
    is_integer(Mmap) andalso Mmap >= 0 andalso Mmap < 1 bsl 31
        andalso is_integer(Trim) andalso Trim >= 0 andalso Trim < 1 bsl 31;
valid_malloc_thresholds(_) -> false.

%% The BEAM sets glibc's trim threshold at start (`+MYtt'), which turns off
%% glibc's own raising of its thresholds: every block Python allocates of 128
%% KiB or more is then mapped afresh and faulted in page by page (about 0.4 ms
%% per MB, for each large argument, result and copy). Once per node, as the
%% thresholds are the process's; `keep' leaves them as the VM set them, and
%% thresholds given in the environment (`MALLOC_MMAP_THRESHOLD_',
%% `GLIBC_TUNABLES') are left to win.
set_malloc_thresholds(keep) ->
    ok;
set_malloc_thresholds({Mmap, Trim}) ->
    case py_nif:malloc_thresholds(Mmap, Trim) of
        ok -> ok;
        unchanged -> logger:notice("erlang_python: malloc_thresholds left as they are (not glibc, "
                                   "refused, or set in the environment)", #{domain => [erlang_python]})
    end.

is_text(T) -> is_binary(T) orelse (is_list(T) andalso io_lib:printable_unicode_list(T)).
texts(L) -> is_list(L) andalso lists:all(fun is_text/1, L).
names(L) -> is_list(L) andalso lists:all(fun(N) -> is_atom(N) orelse is_text(N) end, L).
text(A) when is_atom(A) -> atom_to_binary(A);
text(T) -> unicode:characters_to_binary(T).

config(Key, Default, Valid) ->
    V = application:get_env(erlang_python, Key, Default),
    case Valid(V) of
        true -> {ok, V};
        false -> {error, {invalid_config, Key, V}}
    end.
