%% @doc Call Python from Erlang.
%%
%% Every call returns `{ok, Value}' or `{error, Reason}' and never crashes the
%% caller. Reasons:
%% <ul>
%% <li>`{ExceptionName, Message}': Python raised, e.g. ``{'ValueError', <<"...">>}''.
%%     The formatted traceback of the last failed call of the calling process is
%%     returned by {@link last_traceback/0}.</li>
%% <li>`timeout': no answer within the timeout; the reply will never arrive later.</li>
%% <li>`{bad_argument, Message}': a term that cannot cross to Python
%%     (references, funs, ports, invalid UTF-8 binaries, nesting deeper than 500).</li>
%% <li>`{unsupported_type, TypeName}' / `{bad_result, Message}': a Python result
%%     with no Erlang counterpart.</li>
%% <li>`{overloaded, Current, Max}': no {@link py_semaphore} permit came free in
%%     time.</li>
%% <li>`context_stopped' / `context_failed': the context was stopped, or failed,
%%     with the request in its mailbox (a failed context is replaced at once).</li>
%% <li>`{no_context, N}': there is no context `N'; `{no_pool, Name}': no pool
%%     `Name' runs.</li>
%% <li>`not_started': the application is not running.</li>
%% </ul>
%% Code is a binary or a string. Module and function names are atoms, binaries or
%% strings; a dotted function name (``<<"path.join">>'') walks attributes, and the
%% module `'__main__'' means the globals that `exec' and `eval' use.
-module(py).

-export([call/3, call/4, call/5,
         eval/1, eval/2, eval/3,
         exec/1, exec/2,
         cast/3, cast/4,
         spawn_call/3, spawn_call/4, spawn_call/5, await/1, await/2,
         stream/3, stream/4, stream_eval/1, stream_eval/2,
         stream_start/3, stream_start/4, stream_active/2, stream_cancel/1,
         async_call/3, async_call/4, async_await/1, async_await/2, async_gather/1,
         async_stream/3, async_stream/4,
         parallel/1, parallel/2,
         context/0, context/1, pool/1, start_contexts/0, start_contexts/1, stop_contexts/0,
         contexts_started/0,
         version/0, execution_mode/0, num_executors/0, subinterp_supported/0, info/0, load/0,
         last_traceback/0, interrupt/1, reload/1,
         eval/4, is_ref/1, getattr/2, call_method/3, call_method/4, to_term/1,
         channel/0, channel/1, channel_send/2, channel_close/1,
         configure_logging/0, configure_logging/1,
         ensure_venv/2, ensure_venv/3, activate_venv/1, deactivate_venv/0, venv_info/0,
         memory_stats/0, memory_stats/1, gc/0, gc/1,
         tracemalloc_start/0, tracemalloc_start/1, tracemalloc_stop/0,
         state_store/2, state_fetch/1, state_remove/1, state_keys/0, state_clear/0,
         state_incr/1, state_incr/2, state_decr/1, state_decr/2,
         register_function/2, register_function/3, unregister_function/1]).

%% Used by py_cast_sink to serve the Erlang calls of casts' Python code.
-export([run_callback/3]).
%% Used by py_venv: code run once in every interpreter.
-export([eval_everywhere/2]).

-export_type([name/0, value/0, error/0, kwargs/0, call_opts/0, async_ref/0, ref/0, channel/0]).

-type value() :: term().
-type error() :: {atom(), binary()} | timeout | not_started
               | {overloaded, non_neg_integer(), pos_integer()}
               | {no_context, non_neg_integer()} | {no_pool, atom()}
               | context_stopped | context_failed
               | {bad_argument, binary()} | {unsupported_type, binary()}
               | {bad_result, binary()}.
-type kwargs() :: #{atom() | binary() => term()}.
-type name() :: atom() | binary() | string().
-type code() :: binary() | string().
-define(CHAIN, '$py_chain').
%% A request with a shorter timeout arms its timer at once: a promised one
%% (see request/4) hears of a long run only after 20 to 40 ms.
-define(PROMISE_MIN_MS, 200).
%% How long a promised request's reply, or what follows a callback, is polled
%% for before blocking (ns, a persistent term set from `reply_spin_us' at
%% start: erlang_python_app), and polls between two looks at the clock and
%% the run queues (spin_reply/1).
-define(SPIN_NS, {erlang_python, reply_spin_ns}).
-define(SPIN_POLLS, 16).
%% A timeout a caller gave: milliseconds or `infinity'. Anything else is
%% answered `{error, {bad_argument, _}}', before anything is queued.
-define(IS_TIMEOUT(T), (T =:= infinity orelse (is_integer(T) andalso T >= 0 andalso T =< 16#ffffffff))).
-define(BAD_TIMEOUT, {error, {bad_argument, <<"timeout must be an integer of milliseconds from 0 to 4294967295, or infinity">>}}).
-define(BAD_CALLS, {error, {bad_argument, <<"calls must be a list of {Module, Function, Args}">>}}).
-define(BAD_FNAME, {error, {bad_argument, <<"a function's name must be an atom or a binary">>}}).
%% The calling process's own context, resolved by the router in the NIF.
-define(AUTO, {py_context, auto}).
-type ctx() :: py_context_router:context().
-type call_opts() :: #{kwargs => kwargs(), timeout => timeout(), return => value | ref}.
-type eval_opts() :: #{timeout => timeout(), return => value | ref}.
%% A Python object kept for Erlang (`#{return => ref}'): opaque; its object goes
%% when the last copy of the term is garbage collected.
-type ref() :: reference().
%% A channel into running Python (`py:channel/0,1').
-type channel() :: reference().
%% A submitted request: its tag, its handle, and when it stops waiting for a
%% permit (`none': it holds one).
-type pending() :: {reference() | integer(), reference(), none | integer() | infinity}.
%% What {@link spawn_call/3} returns: awaited once, by the process that made it.
-type async_ref() :: reference().
-define(PENDING(Ref), {'$py_pending', Ref}).
-define(STREAM(Ref), {'$py_stream', Ref}).
-type stream_opts() :: #{active => true | pos_integer(), kwargs => kwargs(),
                         context => ctx(), timeout => timeout()}.

%% @doc Calls `Module.Function(*Args)' in the calling process's context.
-spec call(name(), name(), list()) -> {ok, value()} | {error, error()}.
call(Module, Function, Args) ->
    call(Module, Function, Args, #{}, default_timeout()).

%% @doc `call(Module, Function, Args, Kwargs)' calls `Module.Function(*Args, **Kwargs)';
%% `call(Ctx, Module, Function, Args)' calls `Module.Function(*Args)' in context `Ctx'.
-spec call(name() | ctx(), name(), list() | name(), kwargs() | list()) ->
          {ok, value()} | {error, error()}.
call({py_context, _} = Ctx, Module, Function, Args) ->
    call(Ctx, Module, Function, Args, #{});
call(Module, Function, Args, Kwargs) ->
    call(Module, Function, Args, Kwargs, default_timeout()).

%% @doc `call(Module, Function, Args, Kwargs, Timeout)', or
%% `call(Ctx, Module, Function, Args, #{kwargs => Kwargs, timeout => Timeout})'.
-spec call(name() | ctx(), name(), list() | name(), kwargs() | list(), timeout() | call_opts()) ->
          {ok, value()} | {error, error()}.
call({py_context, _} = Ctx, Module, Function, Args, Opts) when is_map(Opts) ->
    maybe_request(Ctx, fun() ->
        {returning(call, Opts), {name(Module, module), name(Function, function), list(Args),
                                 kwargs(maps:get(kwargs, Opts, #{}))}}
    end, maps:get(timeout, Opts, default_timeout()));
call({py_context, _}, _Module, _Function, _Args, _Opts) ->
    {error, {bad_argument, <<"options must be a map (#{kwargs => Kwargs, timeout => Timeout})">>}};
call(Module, Function, Args, Kwargs, Timeout) ->
    case call_payload(Module, Function, Args, Kwargs) of
        {error, _} = Bad ->
            Bad;
        Payload ->
            on_main_if_refused(element(1, Payload), request(auto, call, Payload, Timeout),
                               fun() -> request(main, call, Payload, Timeout) end)
    end.

%% A module that refuses sub-interpreters (numpy, torch, _ctypes on 3.12), met
%% by an unbound request: the router learns it (unbound requests naming it go
%% to the main interpreter from now on), and this one runs there (`OnMain').
on_main_if_refused(Module, {error, {'ImportError', Msg}} = E, OnMain) ->
    case refuses_subinterpreters(Msg) andalso py_nif:binding() =:= undefined of
        true ->
            learn_main_module(text(Module)),
            OnMain();
        false ->
            E
    end;
on_main_if_refused(_Module, Result, _OnMain) ->
    Result.

%% A call's payload, checked. The common call names its module and function
%% as atoms: nothing to convert, no closure, no `try'.
call_payload(M, F, A, K) when is_atom(M), is_atom(F), is_list(A), is_map(K) ->
    {M, F, A, K};
call_payload(M, F, A, K) ->
    try
        {name(M, module), name(F, function), list(A), kwargs(K)}
    catch
        throw:{bad_argument, _} = Bad -> {error, Bad}
    end.

%% The router learns that unbound calls naming `Name' go to the main
%% interpreter; logged the first time.
learn_main_module(Name) ->
    #{main_modules := Known} = py_nif:routes(),
    case lists:member(Name, Known) of
        true -> ok;
        false ->
            logger:notice("erlang_python: module ~ts cannot load in a sub-interpreter; unbound calls "
                          "naming it now run on the main interpreter", [Name],
                          #{domain => [erlang_python]})
    end,
    ok = py_nif:route_to_main(Name).

%% @private Evaluates `Code' with `Locals' once in every interpreter: the main
%% one and, in `subinterp' mode, each context's own (default and pools; in the
%% other modes contexts share the main interpreter). Every one is tried; the
%% first error, if any, is returned.
-spec eval_everywhere(code(), map()) -> ok | {error, error()}.
eval_everywhere(Code, Locals) ->
    Targets = case execution_mode() of
                  subinterp -> [context(main) | all_contexts()];
                  _ -> [context(main)]
              end,
    Results = [eval(Ctx, Code, Locals) || Ctx <- Targets],
    case [E || {error, _} = E <- Results] of
        [] -> ok;
        [E | _] -> E
    end.

%% Every context: the default ones and the pools'.
all_contexts() ->
    #{default := Default, pool := Pools} = py_nif:routes(),
    [{py_context, I} || I <- Default ++ lists:append(maps:values(Pools))].

refuses_subinterpreters(Msg) ->
    execution_mode() =:= subinterp andalso
        binary:match(Msg, [<<"does not support loading in subinterpreters">>,
                           <<"cannot load module more than once per process">>]) =/= nomatch.

%% @doc Evaluates a Python expression in the calling process's context.
-spec eval(code()) -> {ok, value()} | {error, error()}.
eval(Code) ->
    eval(Code, #{}, default_timeout()).

%% @doc `eval(Code, Locals)' evaluates with extra names, bound for this
%% expression only and seen by its nested scopes too (generator expressions,
%% comprehensions, lambdas); `eval(Ctx, Code)' evaluates in context `Ctx'.
-spec eval(code() | ctx(), map() | code()) -> {ok, value()} | {error, error()}.
eval({py_context, _} = Ctx, Code) ->
    eval(Ctx, Code, #{});
eval(Code, Locals) ->
    eval(Code, Locals, default_timeout()).

%% @doc `eval(Code, Locals, Timeout)', or `eval(Ctx, Code, Locals)'.
-spec eval(code() | ctx(), map() | code(), timeout() | map()) -> {ok, value()} | {error, error()}.
eval({py_context, _} = Ctx, Code, Locals) ->
    maybe_request(Ctx, fun() -> {eval, {code(Code), locals(Locals)}} end, default_timeout());
eval(Code, Locals, Timeout) when not is_map(Timeout) ->
    maybe_request(?AUTO,
                  fun() -> {eval, {code(Code), locals(Locals)}} end, Timeout);
eval(_Code, _Locals, _Opts) ->
    {error, {bad_argument, <<"eval/3 takes (Code, Locals, Timeout) or (Ctx, Code, Locals)">>}}.

%% @doc `eval(Ctx, Code, Locals, #{timeout => T, return => value | ref})':
%% with `return => ref' the result stays in the context and `{ok, Ref}' comes
%% back (see {@link call_method/3}).
-spec eval(ctx(), code(), map(), eval_opts()) -> {ok, value() | ref()} | {error, error()}.
eval({py_context, _} = Ctx, Code, Locals, Opts) when is_map(Opts) ->
    maybe_request(Ctx, fun() -> {returning(eval, Opts), {code(Code), locals(Locals)}} end,
                  maps:get(timeout, Opts, default_timeout()));
eval(_Ctx, _Code, _Locals, _Opts) ->
    {error, {bad_argument, <<"eval/4 takes (Ctx, Code, Locals, #{timeout => T, return => value | ref})">>}}.

%% `call'/`eval', or the op that keeps the result by reference.
returning(Op, Opts) ->
    case {maps:get(return, Opts, value), Op} of
        {value, _} -> Op;
        {ref, call} -> call_ref;
        {ref, eval} -> eval_ref;
        {Other, _} -> throw({bad_argument, iolist_to_binary(io_lib:format("return must be value or ref, not ~0p", [Other]))})
    end.

%% @doc Whether `Term' is a ref: a Python object kept for Erlang by
%% `#{return => ref}'.
-spec is_ref(term()) -> boolean().
is_ref(Term) ->
    py_nif:is_ref(Term).

%% @doc `getattr(Object, Name)' on the object `Ref' names, in the context that
%% keeps it (whoever calls). `{error, context_stopped}' once that context is
%% gone.
-spec getattr(ref(), name()) -> {ok, value()} | {error, error()}.
getattr(Ref, Name) ->
    on_ref(Ref, fun() -> {getattr, name(Name, attribute)} end).

%% @doc `Object.Method(*Args)' on the object `Ref' names.
-spec call_method(ref(), name(), list()) -> {ok, value()} | {error, error()}.
call_method(Ref, Method, Args) ->
    call_method(Ref, Method, Args, #{}).

%% @doc `Object.Method(*Args, **Kwargs)' on the object `Ref' names.
-spec call_method(ref(), name(), list(), kwargs()) -> {ok, value()} | {error, error()}.
call_method(Ref, Method, Args, Kwargs) ->
    on_ref(Ref, fun() -> {call_method, name(Method, method), list(Args), kwargs(Kwargs)} end).

%% @doc The object `Ref' names, converted to a term.
-spec to_term(ref()) -> {ok, value()} | {error, error()}.
to_term(Ref) ->
    on_ref(Ref, fun() -> {to_term} end).

on_ref(Ref, Build) ->
    case is_ref(Ref) of
        true ->
            maybe_request(?AUTO, fun() -> {ref, erlang:insert_element(1, Build(), Ref)} end,
                          default_timeout());
        false ->
            {error, {bad_argument, <<"not a ref">>}}
    end.

%% @doc {@link ensure_venv/3} with pip and the default timeout (10 minutes).
-spec ensure_venv(file:filename_all(), py_venv:requirements()) -> ok | {error, term()}.
ensure_venv(Path, Requirements) ->
    ensure_venv(Path, Requirements, #{}).

%% @doc Creates a virtual environment at `Path' with the linked Python when it
%% is missing, installs `Requirements' (requirement strings, or the path of a
%% requirements file) with pip, or uv with `installer => uv' (extra arguments in
%% `install_args', e.g. `["--no-index", "--find-links", Dir]'), unless the same
%% requirements were installed there already, then activates it (see
%% {@link activate_venv/1}). `{error, {install_failed, Output}}' leaves the
%% active environment as it was.
-spec ensure_venv(file:filename_all(), py_venv:requirements(), py_venv:opts()) -> ok | {error, term()}.
ensure_venv(Path, Requirements, Opts) ->
    py_venv:ensure(Path, Requirements, Opts).

%% @doc Puts the site-packages of the venv at `Path' on `sys.path' of every
%% context, now and started later (replacing an active one);
%% `{error, {not_a_venv, Path}}' if `Path' is not a venv,
%% `{error, {incompatible_venv, Path}}' if it was made with another Python
%% version (it has no site-packages for this one).
-spec activate_venv(file:filename_all()) -> ok | {error, term()}.
activate_venv(Path) ->
    py_venv:activate(Path).

%% @doc Takes the active venv's site-packages off `sys.path' everywhere
%% (modules already imported stay loaded).
-spec deactivate_venv() -> ok.
deactivate_venv() ->
    py_venv:deactivate().

%% @doc `{ok, #{active := boolean(), path => binary(), site_packages => [binary()]}}'.
-spec venv_info() -> {ok, map()}.
venv_info() ->
    py_venv:info().

%% @doc {@link configure_logging/1} at level `info'.
-spec configure_logging() -> ok | {error, error()}.
configure_logging() ->
    configure_logging(#{}).

%% @doc Python `logging' records at or above `level' (`debug | info | notice |
%% warning | error | critical', default `info') reach Erlang's `logger' from
%% every interpreter, now and started later: level mapped, message as Python
%% formats it, metadata `python_logger', `file', `line', `context' (and
%% `traceback' for `exc_info'), domain `[erlang_python, python_logging]'. Python
%% never waits for Erlang: beyond 10,000 records in flight they are dropped and
%% counted (`log_dropped' in {@link load/0}).
-spec configure_logging(#{level => logger:level()}) -> ok | {error, error()}.
configure_logging(Opts) when is_map(Opts) ->
    case python_level(maps:get(level, Opts, info)) of
        {ok, Level} ->
            ok = py_nif:logging_configure(Level),
            eval_everywhere(<<"erlang._configure_logging(level)">>, #{level => Level});
        error ->
            {error, {bad_argument, <<"level must be debug, info, notice, warning, error or critical">>}}
    end;
configure_logging(_Opts) ->
    {error, {bad_argument, <<"options must be a map">>}}.

python_level(debug) -> {ok, 10};
python_level(info) -> {ok, 20};
python_level(notice) -> {ok, 20};
python_level(warning) -> {ok, 30};
python_level(error) -> {ok, 40};
python_level(critical) -> {ok, 50};
python_level(_) -> error.

%% @doc A channel into running Python holding at most 10,000 terms (see
%% {@link channel/1}).
-spec channel() -> {ok, channel()}.
channel() ->
    channel(#{}).

%% @doc A channel into running Python holding at most `max' terms. Pass it to
%% Python as an argument: it arrives as an `erlang.Channel' (`ch.recv(timeout=None)',
%% `for msg in ch', `await ch.arecv()'). Closed by {@link channel_close/1} or
%% when its last copy is garbage collected.
-spec channel(#{max => pos_integer()}) -> {ok, channel()} | {error, {bad_argument, binary()}}.
channel(Opts) when is_map(Opts) ->
    case maps:get(max, Opts, 10000) of
        Max when is_integer(Max), Max > 0, Max < 1 bsl 63 -> {ok, py_nif:channel_open(Max)};
        _ -> {error, {bad_argument, <<"max must be a positive integer">>}}
    end;
channel(_Opts) ->
    {error, {bad_argument, <<"options must be a map">>}}.

%% @doc Queues `Term' for the Python side of `Ch': `{error, full}' when it holds
%% its `max' (nothing waits: the caller decides what to do), `{error, closed}'
%% once closed.
-spec channel_send(channel(), term()) -> ok | {error, full | closed | {bad_argument, binary()}}.
channel_send(Ch, Term) ->
    case py_nif:channel_send(Ch, Term) of
        %% too large to decode on this scheduler in one time slice
        dirty -> py_nif:channel_send_dirty(Ch, Term);
        Sent -> Sent
    end.

%% @doc Closes `Ch': Python drains what is queued, then `recv' raises
%% `erlang.ChannelClosed' (and iteration ends).
-spec channel_close(channel()) -> ok | {error, {bad_argument, binary()}}.
channel_close(Ch) ->
    py_nif:channel_close(Ch).

%% @doc Executes Python statements in the calling process's context; names they
%% define stay in its globals (visible as `'__main__'' to `call').
-spec exec(code()) -> ok | {error, error()}.
exec(Code) ->
    exec_in(?AUTO, Code).

%% @doc Executes Python statements in context `Ctx'.
-spec exec(ctx(), code()) -> ok | {error, error()}.
exec({py_context, _} = Ctx, Code) ->
    exec_in(Ctx, Code);
exec(_Ctx, _Code) ->
    {error, {bad_argument, <<"not a context (py:context/0,1 or py:pool/1)">>}}.

exec_in(Ctx, Code) ->
    case maybe_request(Ctx, fun() -> {exec, {code(Code)}} end, default_timeout()) of
        {ok, ok} -> ok;
        {error, _} = E -> E
    end.

%% @doc Calls `Module.Function(*Args)' and does not wait for it: routed like
%% {@link call/3}, the result is dropped. A Python exception is logged (a
%% `logger' warning with its traceback, domain `[erlang_python]'), never lost.
%% `{error, _}' only for what fails before the call is queued: bad arguments,
%% `not_started', or no permit within `overload_wait' (`{overloaded, Current,
%% Max}'): like a call, a cast waits its turn for a permit, but not for its
%% result. Erlang functions its Python code calls run in a process of the
%% application.
-spec cast(name(), name(), list()) -> ok | {error, error()}.
cast(Module, Function, Args) ->
    cast(Module, Function, Args, #{}).

%% @doc {@link cast/3} with keyword arguments.
-spec cast(name(), name(), list(), kwargs()) -> ok | {error, error()}.
cast(Module, Function, Args, Kwargs) ->
    {py_context, Target} = ?AUTO,
    try {name(Module, module), name(Function, function), list(Args), kwargs(Kwargs)} of
        Payload ->
            case whereis(py_cast_sink) of
                undefined -> {error, not_started};
                Sink -> cast_submit(Target, Payload, Sink)
            end
    catch
        throw:{bad_argument, _} = Bad -> {error, Bad}
    end.

cast_submit(Target, Payload, Sink) ->
    Tag = make_ref(),
    Cast = case py_nif:cast(Target, Payload, Tag, Sink) of
               %% too large to decode on this scheduler (see submitted/6)
               dirty -> py_nif:cast_dirty(Target, Payload, Tag, Sink);
               C -> C
           end,
    case Cast of
        {queued, Handle} ->
            receive
                {py_granted, Tag} -> ok
            after overload_wait(default_timeout()) ->
                case py_nif:withdraw(Handle) of
                    true -> {error, {overloaded, py_semaphore:current(), py_semaphore:max_concurrent()}};
                    false -> receive {py_granted, Tag} -> ok end
                end
            end;
        Other ->
            Other
    end.

%% @doc Starts `Module.Function(*Args)' and returns at once with a reference to
%% {@link await/1} later; any number may be in flight. Only the calling process
%% can await it; if it exits first, the call is cancelled. The call runs to
%% its end whether or not it is awaited yet: Erlang functions its Python code
%% calls run in a process of the application (as a cast's do), not in the
%% caller.
-spec spawn_call(name(), name(), list()) -> async_ref().
spawn_call(Module, Function, Args) ->
    spawn_op(call, ?AUTO, Module, Function, Args, #{}).

%% @doc {@link spawn_call/3} with keyword arguments.
-spec spawn_call(name(), name(), list(), kwargs()) -> async_ref().
spawn_call(Module, Function, Args, Kwargs) ->
    spawn_op(call, ?AUTO, Module, Function, Args, #{kwargs => Kwargs}).

%% @doc {@link spawn_call/3} in context `Ctx', with `#{kwargs => Kwargs,
%% timeout => Timeout}' (`Timeout' is what {@link await/1} waits).
-spec spawn_call(ctx(), name(), name(), list(), call_opts()) -> async_ref().
spawn_call(Ctx, Module, Function, Args, Opts) when is_map(Opts) ->
    spawn_op(call, Ctx, Module, Function, Args, Opts);
spawn_call(_Ctx, _Module, _Function, _Args, _Opts) ->
    pending({error, {bad_argument, <<"options must be a map">>}}, 0).

spawn_op(Op, Ctx, Module, Function, Args, Opts) ->
    Timeout = maps:get(timeout, Opts, default_timeout()),
    Pending = try {name(Module, module), name(Function, function), list(Args),
                   kwargs(maps:get(kwargs, Opts, #{}))} of
                  _ when not ?IS_TIMEOUT(Timeout) -> ?BAD_TIMEOUT;
                  Payload ->
                      case Ctx of
                          {py_context, Target} -> submit(Target, Op, Payload, Timeout, make_ref(), spawned_chain(Op));
                          _ -> {error, {bad_argument, <<"not a context (py:context/0,1 or py:pool/1)">>}}
                      end
              catch
                  throw:{bad_argument, _} = Bad -> {error, Bad}
              end,
    pending(Pending, Timeout).

%% The ref of a spawned call, kept for its await. A refused call is answered
%% by the first await, whatever its timeout (and its entry goes with it).
pending({Tag, _, _} = Pending, Timeout) ->
    put(?PENDING(Tag), {Pending, Timeout}),
    Tag;
pending({error, _} = Refused, _Timeout) ->
    Ref = make_ref(),
    put(?PENDING(Ref), {Refused, 0}),
    Ref.

%% A spawned call's Erlang calls (its Python code's `erlang.call') run in a
%% process of the application, as a cast's do: its spawner takes only what
%% comes to it while it awaits, and the call must not stand still, holding
%% its context, until then. Made from inside a callback, it belongs to that
%% callback's chain, as any request does (it may run on the thread the chain
%% holds), and its Erlang calls still go to the application: the callback may
%% return without awaiting it, and the chain's thread must not wait for its
%% spawner meanwhile. So do those of the function an
%% async call calls to make its coroutine (the coroutine runs as a task,
%% whose Erlang calls go to the application anyway); an async stream is
%% awaited at once, by its caller, who takes them.
spawned_chain(Op) when Op =:= call; Op =:= async_call ->
    case get(?CHAIN) of
        undefined -> {callbacks, sink};
        Chain -> {callbacks, sink, Chain}
    end;
spawned_chain(_Op) ->
    get(?CHAIN).

%% @doc The result of a {@link spawn_call/3}, as {@link call/3} returns it,
%% waiting at most the timeout given to `spawn_call' (default `call_timeout').
-spec await(async_ref()) -> {ok, value()} | {error, error() | unknown_ref}.
await(Ref) ->
    case get(?PENDING(Ref)) of
        {_, Timeout} -> await(Ref, Timeout);
        undefined -> {error, unknown_ref}
    end.

%% @doc {@link await/1} waiting at most `Timeout' ms. A timed-out await cancels
%% the call (interrupting its Python code) and nothing of it arrives later. A
%% reference that is not this process's, or was already awaited:
%% `{error, unknown_ref}' at once.
-spec await(async_ref(), timeout()) -> {ok, value()} | {error, error() | unknown_ref}.
await(_Ref, Timeout) when not ?IS_TIMEOUT(Timeout) ->
    %% the call stays awaitable
    ?BAD_TIMEOUT;
await(Ref, Timeout) ->
    case erase(?PENDING(Ref)) of
        {Pending, _} -> wait_reply(Pending, Timeout);
        undefined -> {error, unknown_ref}
    end.

%% @doc Calls `Module.Function(*Args)' and iterates what it returns (a
%% generator, an iterator, any iterable) to the end in Python: `{ok, [Item]}'.
%% Not iterable: `{error, {not_iterable, TypeName}}'.
-spec stream(name(), name(), list()) -> {ok, [value()]} | {error, error()}.
stream(Module, Function, Args) ->
    stream(Module, Function, Args, #{}).

%% @doc {@link stream/3} with keyword arguments.
-spec stream(name(), name(), list(), kwargs()) -> {ok, [value()]} | {error, error()}.
stream(Module, Function, Args, Kwargs) ->
    Build = fun() -> {stream_call, {name(Module, module), name(Function, function), list(Args), kwargs(Kwargs)}} end,
    on_main_if_refused(Module, maybe_request(?AUTO, Build, default_timeout()),
                       fun() -> maybe_request({py_context, main}, Build, default_timeout()) end).

%% @doc Evaluates `Code' and iterates the result to the end in Python:
%% `{ok, [Item]}' (``py:stream_eval(<<"(x * x for x in range(3))">>)'' gives
%% `{ok, [0, 1, 4]}').
-spec stream_eval(code()) -> {ok, [value()]} | {error, error()}.
stream_eval(Code) ->
    stream_eval(Code, #{}).

%% @doc {@link stream_eval/1} with local names.
-spec stream_eval(code(), map()) -> {ok, [value()]} | {error, error()}.
stream_eval(Code, Locals) ->
    maybe_request(?AUTO,
                  fun() -> {stream_eval, {code(Code), locals(Locals)}} end, default_timeout()).

%% @doc Calls `Module.Function(*Args)' and streams what it returns (a generator,
%% an iterator, any iterable) to the calling process as messages:
%% `{py_chunk, Ref, Item}' for each item, then `{py_end, Ref}', or
%% `{py_error, Ref, Reason}' (an exception while iterating, an item with no
%% Erlang counterpart, its context stopped). Not iterable:
%% `{error, {not_iterable, TypeName}}' from this call.
-spec stream_start(name(), name(), list()) -> {ok, reference()} | {error, error()}.
stream_start(Module, Function, Args) ->
    stream_start(Module, Function, Args, #{}).

%% @doc {@link stream_start/3} with options: `active' (`true', the default, or
%% `N': after N chunks the stream pauses with `{py_passive, Ref}' until
%% {@link stream_active/2}; a paused stream holds no thread), `kwargs',
%% `context' (default: the caller's), `timeout' (for the start).
-spec stream_start(name(), name(), list(), stream_opts()) -> {ok, reference()} | {error, error()}.
stream_start(Module, Function, Args, Opts) when is_map(Opts) ->
    %% a term that names no context is refused by the NIF
    Target = case maps:get(context, Opts, ?AUTO) of
                 {py_context, T} -> T;
                 Other -> Other
             end,
    Timeout = maps:get(timeout, Opts, default_timeout()),
    Active = maps:get(active, Opts, true),
    try {name(Module, module), name(Function, function), list(Args),
         kwargs(maps:get(kwargs, Opts, #{})), active(Active)} of
        _ when not ?IS_TIMEOUT(Timeout) -> ?BAD_TIMEOUT;
        {M, F, A, Kw, _} ->
            forget_finished_streams(),
            Tag = make_ref(),
            Started = case py_nif:stream_start(Target, {M, F, A, Kw}, Tag, Active) of
                          %% too large to decode on this scheduler (see submitted/6)
                          dirty -> py_nif:stream_start_dirty(Target, {M, F, A, Kw}, Tag, Active);
                          S -> S
                      end,
            case Started of
                {ok, Call, Stream} -> started(wait_reply({Tag, Call, none}, Timeout), Tag, Stream);
                {queued, Call, Stream} ->
                    started(wait_reply({Tag, Call, deadline(overload_wait(Timeout))}, Timeout), Tag, Stream);
                {error, _} = E -> E
            end
    catch
        throw:{bad_argument, _} = Bad -> {error, Bad}
    end;
stream_start(_Module, _Function, _Args, _Opts) ->
    {error, {bad_argument, <<"options must be a map">>}}.

started({ok, started}, Tag, Stream) ->
    put(?STREAM(Tag), Stream),
    {ok, Tag};
started({error, _} = E, _Tag, _Stream) ->
    E.

active(true) -> true;
active(N) when is_integer(N), N > 0, N < 1 bsl 63 -> N;
active(_) -> bad(active, <<" must be true or a positive integer">>).

%% Streams that ended are dropped from the process dictionary when the next
%% one starts (their handles would otherwise pile up in a long-lived process).
forget_finished_streams() ->
    [erase(K) || {?STREAM(_) = K, S} <- get(), py_nif:stream_done(S)],
    ok.

%% @doc Lets `N' more chunks of stream `Ref' come (`true': all of them), as
%% `inet:setopts(Socket, [{active, N}])' does; resumes a paused stream.
-spec stream_active(reference(), true | pos_integer()) -> ok | {error, unknown_ref | {bad_argument, binary()}}.
stream_active(Ref, Active) ->
    case get(?STREAM(Ref)) of
        undefined -> {error, unknown_ref};
        Stream ->
            try active(Active) of
                A -> py_nif:stream_active(Stream, A)
            catch
                throw:{bad_argument, _} = Bad -> {error, Bad}
            end
    end.

%% @doc Stops stream `Ref': its generator is closed (its `finally' runs), and no
%% message of it is left in, or arrives later in, the caller's mailbox.
-spec stream_cancel(reference()) -> ok.
stream_cancel(Ref) ->
    case erase(?STREAM(Ref)) of
        undefined -> ok;
        Stream -> ok = py_nif:stream_cancel(Stream)
    end,
    flush_stream(Ref).

flush_stream(Ref) ->
    receive
        {py_chunk, Ref, _} -> flush_stream(Ref);
        {py_passive, Ref} -> flush_stream(Ref);
        {py_end, Ref} -> flush_stream(Ref);
        {py_error, Ref, _} -> flush_stream(Ref)
    after 0 -> ok
    end.

%% @doc Calls `Module.Function(*Args)', which returns an awaitable (a
%% coroutine), and runs it as a task on the event loop of the caller's
%% context: `Ref' for {@link async_await/1}. Each context has one loop, stepped
%% by the context's own thread: tasks of many callers interleave on it, plain
%% requests to the context are served while tasks wait, and an idle loop costs
%% no CPU. Not awaitable: `{error, {not_awaitable, TypeName}}' from the await.
-spec async_call(name(), name(), list()) -> async_ref().
async_call(Module, Function, Args) ->
    async_call(Module, Function, Args, #{}).

%% @doc {@link async_call/3} with keyword arguments.
-spec async_call(name(), name(), list(), kwargs()) -> async_ref().
async_call(Module, Function, Args, Kwargs) ->
    spawn_op(async_call, ?AUTO, Module, Function, Args,
             #{kwargs => Kwargs}).

%% @doc The task's result, as {@link call/3} returns it (`{error, cancelled}' if
%% the task was cancelled in Python). A timed-out await cancels the task.
-spec async_await(async_ref()) -> {ok, value()} | {error, error() | unknown_ref | cancelled}.
async_await(Ref) ->
    await(Ref).

%% @doc {@link async_await/1} waiting at most `Timeout' ms.
-spec async_await(async_ref(), timeout()) -> {ok, value()} | {error, error() | unknown_ref | cancelled}.
async_await(Ref, Timeout) ->
    await(Ref, Timeout).

%% @doc Runs the coroutines of `Calls' as tasks side by side and waits for all:
%% `{ok, [{ok, V} | {error, E}]}' in input order.
-spec async_gather([{name(), name(), list()}]) -> {ok, [{ok, value()} | {error, error()}]} | {error, error()}.
async_gather(Calls) when is_list(Calls), length(Calls) >= 0 ->
    Refs = [case Call of
                {M, F, A} -> async_call(M, F, A);
                _ -> {error, {bad_argument, <<"each call must be {Module, Function, Args}">>}}
            end || Call <- Calls],
    {ok, [case R of
              {error, _} = E -> E;
              _ -> async_await(R)
          end || R <- Refs]};
async_gather(_Calls) ->
    ?BAD_CALLS.

%% @doc Calls `Module.Function(*Args)', which returns an async iterable (an async
%% generator), and collects it on the context's loop: `{ok, [Item]}';
%% `{error, {not_async_iterable, TypeName}}' for anything else (a coroutine
%% is closed unrun).
-spec async_stream(name(), name(), list()) -> {ok, [value()]} | {error, error()}.
async_stream(Module, Function, Args) ->
    async_stream(Module, Function, Args, #{}).

%% @doc {@link async_stream/3} with keyword arguments.
-spec async_stream(name(), name(), list(), kwargs()) -> {ok, [value()]} | {error, error()}.
async_stream(Module, Function, Args, Kwargs) ->
    await(spawn_op(async_stream, ?AUTO, Module, Function, Args,
                   #{kwargs => Kwargs})).

%% @doc Runs the calls side by side, spread by the router over distinct contexts
%% (least busy first; a context is used twice only when there are more calls
%% than contexts), and returns one
%% result per call in input order: `{ok, [{ok, V} | {error, E}]}'.
-spec parallel([{name(), name(), list()}]) -> {ok, [{ok, value()} | {error, error()}]} | {error, error()}.
parallel(Calls) ->
    parallel(Calls, default_timeout()).

%% @doc {@link parallel/1} with one timeout for the whole batch: a call not
%% answered when it passes is cancelled and answers `{error, timeout}'.
-spec parallel([{name(), name(), list()}], timeout()) -> {ok, [{ok, value()} | {error, error()}]} | {error, error()}.
parallel(_Calls, Timeout) when not ?IS_TIMEOUT(Timeout) ->
    ?BAD_TIMEOUT;
parallel(Calls, Timeout) when is_list(Calls), length(Calls) >= 0 ->
    Ctxs = [{py_context, T} || T <- py_nif:spread(length(Calls))],
    #{main_modules := Main} = py_nif:routes(),
    Pending = [submit_call(on_main(Call, Main, Ctx), Call, Timeout) || {Ctx, Call} <- lists:zip(Ctxs, Calls)],
    %% one deadline for the whole batch, not one per call
    Deadline = deadline(Timeout),
    Results = [wait_reply(P, remaining(Deadline)) || P <- Pending],
    %% a call whose module refused its sub-interpreter runs again on main
    {ok, [case {Call, R} of
              {{M, _, _}, {error, {'ImportError', _}}} when Ctx =/= {py_context, main} ->
                  on_main_if_refused(M, R, fun() -> wait_reply(submit_call({py_context, main}, Call, Timeout),
                                                                remaining(Deadline)) end);
              _ ->
                  R
          end || {Ctx, Call, R} <- lists:zip3(Ctxs, Calls, Results)]};
parallel(_Calls, _Timeout) ->
    ?BAD_CALLS.

%% A call of a batch naming a module the router sends to the main interpreter
%% goes there, whichever context the batch gave it.
on_main({M, _, _}, [_ | _] = Main, Ctx) ->
    case lists:member(catch text(name(M, module)), Main) of
        true -> {py_context, main};
        false -> Ctx
    end;
on_main(_Call, _Main, Ctx) ->
    Ctx.

%% @doc The calling process's context in pool `Name' (see
%% {@link py_context_router:start_pool/2}): usable wherever a context is. For a
%% pool that does not run, its calls return `{error, {no_pool, Name}}'.
-spec pool(atom()) -> ctx() | {error, {bad_argument, binary()}}.
pool(Name) ->
    py_context_router:pool(Name).

%% @doc The calling process's context (see {@link py_context_router:get_context/0}).
-spec context() -> ctx().
context() ->
    py_context_router:get_context().

%% @doc Context number `N' (1-based), or `main': the main interpreter, for
%% modules that cannot load in sub-interpreters (numpy, ctypes on 3.12).
-spec context(pos_integer() | main) -> ctx() | {error, {bad_argument, binary()}}.
context(N) ->
    py_context_router:get_context(N).

%% @doc Starts the default number of contexts (replacing running ones).
-spec start_contexts() -> {ok, [ctx()]} | {error, term()}.
start_contexts() ->
    py_context_router:start().

%% @doc Starts contexts: `#{contexts => N}'.
-spec start_contexts(#{contexts => pos_integer()}) -> {ok, [ctx()]} | {error, term()}.
start_contexts(Opts) ->
    py_context_router:start(Opts).

%% @doc Stops every context.
-spec stop_contexts() -> ok | {error, not_started}.
stop_contexts() ->
    py_context_router:stop().

%% @doc Whether contexts are running.
-spec contexts_started() -> boolean().
contexts_started() ->
    py_context_router:num_contexts() > 0.

%% @doc The linked Python's `sys.version'.
-spec version() -> {ok, binary()} | {error, not_started}.
version() ->
    case py_nif:info() of
        #{<<"version">> := V} -> {ok, V};
        _ -> {error, not_started}
    end.

%% @doc `free_threaded | subinterp | multi_executor'.
-spec execution_mode() -> free_threaded | subinterp | multi_executor.
execution_mode() ->
    Info = py_nif:info(),
    binary_to_atom(maps:get(<<"mode">>, Info, maps:get(<<"build_mode">>, Info))).

%% @doc The companion of {@link execution_mode/0}: `#{mode, version,
%% gil_enabled, subinterp_supported, num_executors, num_contexts, max_contexts,
%% channels, routed_to_main}'. `channels' counts the channels alive on the node
%% (held by an Erlang copy, a request or a Python object). `routed_to_main' lists the modules that refused to load in a
%% sub-interpreter: unbound calls naming them run on the main interpreter.
%% `gil_enabled' is read live from the main interpreter: on a free-threaded build
%% an extension module without free-threading support turns the GIL back on at
%% import, and this is where that shows.
-spec info() -> map().
info() ->
    Info = maps:fold(fun(K, V, Acc) -> Acc#{binary_to_atom(K) => V} end, #{}, py_nif:info()),
    Mode = execution_mode(),
    Gil = case py:eval({py_context, main}, <<"__import__('sys')._is_gil_enabled() if hasattr(__import__('sys'), '_is_gil_enabled') else True">>) of
              {ok, G} when is_boolean(G) -> G;
              _ -> maps:get(gil_enabled, Info, true)
          end,
    #{main_modules := Mains} = py_nif:routes(),
    maps:without([build_mode], Info#{mode => Mode, gil_enabled => Gil, routed_to_main => Mains}).

%% @doc Every load figure in one map:
%% `#{mode, num_executors, num_contexts,
%%    semaphore => #{current, max, waiting, utilisation},  %% utilisation in percent
%%    executors => [Figures], contexts => [Figures]}'
%% where `Figures' is `#{served, in_flight, queued, busy_us}' of one executor or
%% context actor (calls finished, calls submitted and not finished, calls still in
%% its mailbox, microseconds spent running Python; a context's also its `id'). In `multi_executor' mode the
%% contexts are served by executors and `contexts' is empty.
-spec load() -> map().
load() ->
    {Executors, Contexts} = py_nif:load(),
    Current = py_semaphore:current(),
    Max = py_semaphore:max_concurrent(),
    Waiting = py_semaphore:waiting(),
    Keys = fun(M) -> maps:fold(fun(K, V, A) -> A#{binary_to_atom(K) => V} end, #{}, M) end,
    #{mode => execution_mode(),
      num_executors => num_executors(),
      num_contexts => py_context_router:num_contexts(),
      semaphore => #{current => Current, max => Max, waiting => Waiting,
                     utilisation => Current / Max * 100},
      log_dropped => py_nif:logging_dropped(),
      executors => [Keys(E) || E <- Executors],
      contexts => [Keys(C) || C <- Contexts]}.

%% @doc How many executor threads serve calls.
-spec num_executors() -> non_neg_integer().
num_executors() ->
    maps:get(<<"num_executors">>, py_nif:info()).

%% @doc Whether the linked Python can run OWN_GIL sub-interpreters (3.12+, GIL build).
-spec subinterp_supported() -> boolean().
subinterp_supported() ->
    maps:get(<<"subinterp_supported">>, py_nif:info(), false).

%% @doc Raises `KeyboardInterrupt' in the Python code running now in `Ctx' (the
%% call running it gets `{error, {'KeyboardInterrupt', _}}'); with nothing
%% running, no effect. Python delivers it at its next bytecode: a blocking C call
%% (`time.sleep', I/O) finishes first, and a C function the call names itself
%% (`py:call(Ctx, time, sleep, [5])') gets it as it returns. For
%% `py:context(main)', every call running
%% on the main interpreter's `__main__' is interrupted.
-spec interrupt(ctx()) -> ok | {error, not_started | {no_context, pos_integer()} | {bad_argument, binary()}}.
interrupt({py_context, Target}) ->
    py_nif:interrupt(Target);
interrupt(_Ctx) ->
    {error, {bad_argument, <<"not a context (py:context/0,1 or py:pool/1)">>}}.

%% @doc Reloads module `Module' (`importlib.reload') in every interpreter that
%% has imported it: each context and the main interpreter (once when they share
%% one). Interpreters that never imported it are left alone. The first error, if
%% any, is returned (the others still reload).
-spec reload(name()) -> ok | {error, error()}.
reload(Module) ->
    %% the name as text: an atom would reach Python as itself only if it is not
    %% true, false, none, nil or undefined
    try text(name(Module, module)) of
        Name ->
            Code = <<"None if m not in __import__('sys').modules else "
                     "[__import__('importlib').reload(__import__('sys').modules[m]), None][1]">>,
            eval_everywhere(Code, #{m => Name})
    catch
        throw:{bad_argument, _} = Bad -> {error, Bad}
    end.

%% @doc The formatted Python traceback of this process's last call that raised.
-spec last_traceback() -> {ok, binary()} | {error, none}.
last_traceback() ->
    case get(py_last_traceback) of
        undefined -> {error, none};
        Tb -> {ok, Tb}
    end.

%% @doc Python memory figures of the calling process's context:
%% `#{gc_stats => [#{collections, collected, uncollectable}] (one per generation),
%% gc_count => [integer()], gc_threshold => [integer()], gc_enabled => boolean(),
%% traced_memory => #{current, peak} (only while tracemalloc runs)}'.
-spec memory_stats() -> {ok, map()} | {error, error()}.
memory_stats() ->
    memory_stats(context()).

%% @doc {@link memory_stats/0} of context `Ctx'.
-spec memory_stats(ctx()) -> {ok, map()} | {error, error()}.
memory_stats(Ctx) ->
    Code = <<"(__import__('gc').get_stats(), list(__import__('gc').get_count()), "
             "list(__import__('gc').get_threshold()), __import__('gc').isenabled(), "
             "__import__('tracemalloc').get_traced_memory() "
             "if 'tracemalloc' in __import__('sys').modules and __import__('tracemalloc').is_tracing() "
             "else None)">>,
    case eval(Ctx, Code) of
        {ok, {Stats, Count, Threshold, Enabled, Traced}} ->
            Base = #{gc_stats => [atom_keys(S) || S <- Stats], gc_count => Count,
                     gc_threshold => Threshold, gc_enabled => Enabled},
            {ok, case Traced of
                     none -> Base;
                     {Cur, Peak} -> Base#{traced_memory => #{current => Cur, peak => Peak}}
                 end};
        {error, _} = E ->
            E
    end.

%% @doc Runs a full garbage collection in the calling process's context and
%% returns how many objects it found unreachable.
-spec gc() -> {ok, non_neg_integer()} | {error, error()}.
gc() ->
    call(gc, collect, []).

%% @doc Collects generation `Gen' (0, 1 or 2).
-spec gc(0..2) -> {ok, non_neg_integer()} | {error, error()}.
gc(Gen) when is_integer(Gen) ->
    call(gc, collect, [Gen]);
gc(_Gen) ->
    {error, {bad_argument, <<"the generation is 0, 1 or 2">>}}.

%% @doc Starts tracing Python memory allocations in the calling process's context.
%% (CPython 3.12's `_tracemalloc' refuses sub-interpreters: there the error says
%% so, and `py:call(py:context(main), tracemalloc, start, [])' traces the main one.)
-spec tracemalloc_start() -> ok | {error, error()}.
tracemalloc_start() ->
    tracemalloc_start(1).

%% @doc Starts tracing, keeping `Frames' frames of traceback per allocation.
-spec tracemalloc_start(pos_integer()) -> ok | {error, error()}.
tracemalloc_start(Frames) when is_integer(Frames), Frames >= 1 ->
    ok_result(call(tracemalloc, start, [Frames]));
tracemalloc_start(_Frames) ->
    {error, {bad_argument, <<"frames must be a positive integer">>}}.

%% @doc Stops tracing (and frees the traces).
-spec tracemalloc_stop() -> ok | {error, error()}.
tracemalloc_stop() ->
    ok_result(call(tracemalloc, stop, [])).

%% @doc Stores `Value' under `Key' in the node's shared state, visible from every
%% context (Python's `erlang.state_get') and from Erlang. Atom keys are stored
%% as binaries, which is what Python's `str' keys become.
-spec state_store(term(), term()) -> ok.
state_store(Key, Value) when is_integer(Value) ->
    py_nif:state_store(key(Key), Value);
state_store(Key, Value) ->
    %% made external here: term_to_binary/1 yields on a large value, where
    %% the NIF would hold its scheduler
    Ext = term_to_binary(Value),
    case py_nif:state_store_ext(key(Key), Ext) of
        %% too large to copy in on this scheduler in one time slice
        dirty -> py_nif:state_store_ext_dirty(key(Key), Ext);
        Stored -> Stored
    end.

%% @doc The value under `Key'.
-spec state_fetch(term()) -> {ok, term()} | {error, not_found}.
state_fetch(Key) ->
    case py_nif:state_fetch(key(Key)) of
        %% too large to make a term of on this scheduler in one time slice
        dirty -> py_nif:state_fetch_dirty(key(Key));
        Fetched -> Fetched
    end.

%% @doc Removes `Key'.
-spec state_remove(term()) -> ok.
state_remove(Key) ->
    py_nif:state_remove(key(Key)).

%% @doc Every key.
-spec state_keys() -> [term()].
state_keys() ->
    py_nif:state_keys().

%% @doc Removes every key.
-spec state_clear() -> ok.
state_clear() ->
    py_nif:state_clear().

%% @doc Atomically adds 1 to the counter under `Key' (0 when missing).
-spec state_incr(term()) -> {ok, integer()} | {error, not_integer | overflow}.
state_incr(Key) ->
    state_incr(Key, 1).

%% @doc Atomically adds `N'.
-spec state_incr(term(), integer()) -> {ok, integer()} | {error, not_integer | overflow | {bad_argument, binary()}}.
state_incr(Key, N) when is_integer(N), N >= -(1 bsl 63), N < 1 bsl 63 ->
    py_nif:state_incr(key(Key), N);
state_incr(_Key, N) when is_integer(N) ->
    %% counters are 64-bit: no step that large can be added
    {error, overflow};
state_incr(_Key, _N) ->
    {error, {bad_argument, <<"the step must be an integer">>}}.

%% @doc Atomically subtracts 1.
-spec state_decr(term()) -> {ok, integer()} | {error, not_integer | overflow}.
state_decr(Key) ->
    state_incr(Key, -1).

%% @doc Atomically subtracts `N'.
-spec state_decr(term(), integer()) -> {ok, integer()} | {error, not_integer | overflow | {bad_argument, binary()}}.
state_decr(Key, N) when is_integer(N) ->
    state_incr(Key, -N);
state_decr(Key, N) ->
    state_incr(Key, N).

%% @doc Makes `Fun' callable from Python as `erlang.call(Name, *Args)',
%% `erlang.Name(*Args)' or `from erlang import Name'. `Fun' takes the list of
%% arguments (`fun([X, Y]) -> ...'), or as many arguments as Python passes. It
%% runs in the Erlang process that made the Python call; it may call Python again
%% (the same context or another) to any depth. An exception it raises becomes
%% `erlang.ErlangError' in Python.
-spec register_function(atom() | binary(), fun()) -> ok | {error, not_started | {bad_argument, binary()}}.
register_function(Name, Fun) when is_function(Fun), (is_atom(Name) orelse is_binary(Name)) ->
    py_callback_registry:register(fname(Name), Fun);
register_function(Name, _Fun) when is_atom(Name); is_binary(Name) ->
    {error, {bad_argument, <<"not a fun">>}};
register_function(_Name, _Fun) ->
    ?BAD_FNAME.

%% @doc Registers `Module:Function' (called with the Python arguments).
-spec register_function(atom() | binary(), module(), atom()) -> ok | {error, not_started | {bad_argument, binary()}}.
register_function(Name, Module, Function) when is_atom(Module), is_atom(Function), (is_atom(Name) orelse is_binary(Name)) ->
    py_callback_registry:register(fname(Name), {Module, Function});
register_function(Name, _Module, _Function) when is_atom(Name); is_binary(Name) ->
    {error, {bad_argument, <<"module and function must be atoms">>}};
register_function(_Name, _Module, _Function) ->
    ?BAD_FNAME.

%% @doc Removes a registered function; Python then gets `erlang.UnknownFunction'.
-spec unregister_function(atom() | binary()) -> ok | {error, not_started | {bad_argument, binary()}}.
unregister_function(Name) when is_atom(Name); is_binary(Name) ->
    py_callback_registry:unregister(fname(Name));
unregister_function(_Name) ->
    ?BAD_FNAME.

%%% Internal

fname(A) when is_atom(A) -> atom_to_binary(A, utf8);
fname(B) when is_binary(B) -> B.

key(K) when is_atom(K), K =/= true, K =/= false, K =/= none, K =/= nil, K =/= undefined ->
    atom_to_binary(K, utf8);
key(K) ->
    K.

ok_result({ok, _}) -> ok;
ok_result({error, _} = E) -> E.

atom_keys(M) ->
    maps:fold(fun(K, V, Acc) when is_binary(K) -> Acc#{binary_to_atom(K) => V};
                 (K, V, Acc) -> Acc#{K => V}
              end, #{}, M).

default_timeout() ->
    erlang_python_app:call_timeout().

maybe_request({py_context, Target}, Build, Timeout) ->
    try Build() of
        {Op, Payload} -> request(Target, Op, Payload, Timeout)
    catch
        throw:{bad_argument, _} = Bad -> {error, Bad}
    end.

request(_Target, _Op, _Payload, Timeout) when not ?IS_TIMEOUT(Timeout) ->
    ?BAD_TIMEOUT;
request(Target, Op, Payload, Timeout) ->
    case submit(Target, Op, Payload, Timeout, request_tag(Timeout)) of
        {Tag, Handle, promised} ->
            %% No timer until the request runs long (see request_tag/1).
            polled(Tag, Handle, {promised, Timeout});
        {Tag, Handle, none} ->
            %% The wait begins as the handle is made: the timeout counts from
            %% the handle's making (`{since, Timeout}'), so no clock is read
            %% here; only a callback or an output line, which waits again,
            %% asks what is left.
            wait_reply(Tag, Handle, none, {since, Timeout}, Timeout);
        Pending ->
            wait_reply(Pending, Timeout)
    end.

%% Waits for what comes next for request `Tag' (its reply, a callback of
%% its Python code, which is run and waited after in turn), polling for it
%% first (spin_reply/1): after a promised request is made, and after each
%% callback is answered, so that a loop of callbacks does not put this
%% scheduler to sleep between them either (docs/benchmarks.md, "Seventh
%% look"). `Deadline' is as for wait_reply/4.
polled(Tag, Handle, Deadline) ->
    case spin_reply(Tag) of
        none ->
            wait_reply(Tag, Handle, none, Deadline);
        {callback, Cb, Name, Args} ->
            run_callback(Cb, Name, Args),
            polled(Tag, Handle, timed(Deadline));
        late ->
            %% the request runs long (no point polling): from now on it has
            %% a timer
            wait_reply(Tag, Handle, none, timed(Deadline));
        {reply, Result} ->
            Result
    end.

%% Polls for the reply of a request, or a callback of its Python code, for
%% a few microseconds before wait_reply/5 blocks, when nothing else wants a
%% scheduler. A trivial call answers in a few microseconds, and a scheduler
%% with nothing else to run often went to sleep meanwhile: on a virtual
%% machine its idle core is then woken through the host, which cost far more
%% than the call (a call took 10 to 20 us instead of 2.5 us in such phases;
%% docs/benchmarks.md, "Sixth look"). Polling keeps the scheduler on this
%% process instead, as the scheduler's own busy wait would, and stops as
%% soon as any run queue has a process (or a dirty job) waiting, a message
%% not of this request comes, or after `reply_spin_us' (default 20; 0, and a
%% node with one core, poll not at all). A process with messages queued does
%% not poll: each poll would scan them. `none': no reply yet; `{reply,
%% Result}'; `{callback, Cb, Name, Args}' to run; `late' (its `{py_late,
%% Tag}' nudge, taken here so none is left behind).
spin_reply(Tag) ->
    case persistent_term:get(?SPIN_NS, 0) of
        0 ->
            none;
        Ns ->
            case erlang:process_info(self(), message_queue_len) of
                {message_queue_len, 0} -> spin_reply(Tag, erlang:monotonic_time(nanosecond) + Ns, 0);
                _ -> none
            end
    end.

spin_reply(Tag, Until, 0) ->
    case erlang:statistics(total_run_queue_lengths) =:= 0
         andalso erlang:process_info(self(), message_queue_len) =:= {message_queue_len, 0}
         andalso erlang:monotonic_time(nanosecond) < Until of
        true -> spin_reply(Tag, Until, ?SPIN_POLLS);
        false -> none
    end;
spin_reply(Tag, Until, N) ->
    receive
        {py_reply, Tag, Result} -> {reply, Result};
        {py_reply, Tag, Error, Traceback} -> put(py_last_traceback, Traceback), {reply, Error};
        {py_callback, Tag, Cb, Name, Args} -> {callback, Cb, Name, Args};
        {py_late, Tag} -> late;
        {py_output, Tag, _Fd, Text} ->
            %% printed before the reply: shown first, as wait_reply/5 would
            io:put_chars(Text),
            spin_reply(Tag, Until, N)
    after 0 ->
        spin_reply(Tag, Until, N - 1)
    end.

%% A synchronous request's tag. An integer asks to wait with no timer of our
%% own: if the job finds its context or executor idle, it is `promised', and
%% we hear from it within tens of milliseconds, by its reply or by a
%% `{py_late, Tag}' nudge (see `actors::late'); only then is a timer armed,
%% for what is left. Integers are unique in the node, like references.
request_tag(Timeout) when is_integer(Timeout), Timeout >= ?PROMISE_MIN_MS -> erlang:unique_integer();
request_tag(_Timeout) -> make_ref().

%% Queues a request. When every permit is taken it waits its turn in the
%% semaphore's queue (first come, first served): `await' withdraws it when its
%% `overload_wait' is over.
-spec submit(py_nif:target(), atom(), term(), timeout()) -> pending() | {error, error()}.
submit(Target, Op, Payload, Timeout) ->
    submit(Target, Op, Payload, Timeout, make_ref()).

%% With the tag `Tag': an integer tag may come back `promised' (request/4).
-spec submit(py_nif:target(), atom(), term(), timeout(), reference() | integer()) ->
          pending() | {integer(), reference(), promised} | {error, error()}.
submit(Target, Op, Payload, Timeout, Tag) ->
    submit(Target, Op, Payload, Timeout, Tag, get(?CHAIN)).

%% With `Chain' for the NIF: the callback chain this process runs under
%% (`undefined': none), or `{callbacks, sink}' or `{callbacks, sink, Chain}'
%% (see spawned_chain/1).
submit(Target, Op, Payload, Timeout, Tag, Chain) ->
    submitted(py_nif:submit(Target, Op, Payload, Tag, Chain), Target, Op, Payload, Timeout, Tag, Chain).

%% `dirty': the payload is too large to decode on this scheduler in one time
%% slice; submitted again from a dirty CPU scheduler.
submitted(dirty, Target, Op, Payload, Timeout, Tag, Chain) ->
    submitted(py_nif:submit_dirty(Target, Op, Payload, Tag, Chain), Target, Op, Payload, Timeout, Tag, Chain);
submitted(Submitted, _Target, _Op, _Payload, Timeout, Tag, _Chain) ->
    case Submitted of
        {ok, Handle} -> {Tag, Handle, none};
        {promised, Handle} -> {Tag, Handle, promised};
        {queued, Handle} -> {Tag, Handle, deadline(overload_wait(Timeout))};
        {error, _} = E -> E
    end.

overload_wait(Timeout) ->
    case {Timeout, application:get_env(erlang_python, overload_wait, 1000)} of
        {infinity, W} -> W;
        {T, infinity} -> T;
        {T, W} -> min(T, W)
    end.

%% The reply was already being sent when we gave up: it is in our mailbox or about to be.
await_sent(Tag) ->
    receive
        {py_reply, Tag, Result} -> flush_callbacks(Tag), Result;
        {py_reply, Tag, Error, Traceback} -> flush_callbacks(Tag), put(py_last_traceback, Traceback), Error
    end.

submit_call({py_context, Target}, {M, F, A}, Timeout) ->
    try {name(M, module), name(F, function), list(A), #{}} of
        Payload -> submit(Target, call, Payload, Timeout)
    catch
        throw:{bad_argument, _} = Bad -> {error, Bad}
    end;
submit_call(_, _, _) ->
    {error, {bad_argument, <<"each call must be {Module, Function, Args}">>}}.

-spec wait_reply(pending() | {error, error()}, timeout()) -> {ok, value()} | {error, error()}.
wait_reply({error, _} = E, _Timeout) ->
    E;
wait_reply({Tag, Handle, none}, Timeout) ->
    %% The first wait is the whole timeout, just begun (an awaited call's
    %% handle may be much older than this wait: the deadline is taken here).
    wait_reply(Tag, Handle, none, deadline(Timeout), Timeout);
wait_reply({Tag, Handle, WaitDeadline}, Timeout) ->
    wait_reply(Tag, Handle, WaitDeadline, deadline(Timeout), left(WaitDeadline)).

wait_reply(Tag, Handle, none, Deadline) ->
    wait_reply(Tag, Handle, none, Deadline, left(Handle, Deadline)).

%% Waits for the reply, at most `After' ms, running the Erlang functions Python
%% calls meanwhile. A request still queued for a permit (`WaitDeadline' is not
%% `none') is withdrawn when its `overload_wait' is over, unless it was handed
%% one meanwhile (a reply or a callback also shows it was). A promised request
%% (`{promised, Timeout}') waits with no timer until its `{py_late, Tag}'
%% nudge, which comes before the reply when it runs long, or until a
%% callback (the registered function may receive anything, a nudge
%% included); from then on it waits for what is left of `Timeout'.
wait_reply(Tag, Handle, WaitDeadline, Deadline, After) ->
    receive
        {py_reply, Tag, Result} -> Result;
        {py_reply, Tag, Error, Traceback} -> put(py_last_traceback, Traceback), Error;
        {py_callback, Tag, Cb, Name, Args} ->
            run_callback(Cb, Name, Args),
            %% Python usually answers, or calls again, within microseconds.
            polled(Tag, Handle, timed(Deadline));
        {py_output, Tag, _Fd, Text} ->
            %% print/sys.stdout/sys.stderr of the request: our group leader
            io:put_chars(Text),
            wait_reply(Tag, Handle, none, Deadline);
        {py_late, Tag} ->
            wait_reply(Tag, Handle, none, timed(Deadline))
    after After ->
        expired(WaitDeadline, Tag, Handle, Deadline)
    end.

expired(none, Tag, Handle, _Deadline) ->
    case py_nif:cancel(Handle) of
        true -> flush_callbacks(Tag), {error, timeout};
        false -> await_sent(Tag)
    end;
expired(_WaitDeadline, Tag, Handle, Deadline) ->
    case py_nif:withdraw(Handle) of
        true -> {error, {overloaded, py_semaphore:current(), py_semaphore:max_concurrent()}};
        false -> wait_reply(Tag, Handle, none, Deadline)
    end.

remaining(infinity) -> infinity;
remaining(D) -> left(D).

deadline(infinity) -> infinity;
deadline(T) -> erlang:monotonic_time(millisecond) + T.

left(infinity) -> infinity;
left(D) -> max(0, D - erlang:monotonic_time(millisecond)).

%% A promised request's wait, once it has a timer.
timed({promised, Timeout}) -> {since, Timeout};
timed(Deadline) -> Deadline.

%% What is left of a call's timeout: `{since, T}' counts from the making of
%% its handle (`py_nif:waited/1'), a promise waits with no timer, anything else
%% is a deadline.
left(_Handle, {promised, _}) -> infinity;
left(_Handle, {since, infinity}) -> infinity;
left(Handle, {since, T}) -> max(0, T - py_nif:waited(Handle));
left(_Handle, Deadline) -> left(Deadline).

flush_callbacks(Tag) ->
    receive
        {py_callback, Tag, _, _, _} -> flush_callbacks(Tag);
        {py_output, Tag, _, _} -> flush_callbacks(Tag);
        {py_late, Tag} -> flush_callbacks(Tag)
    after 0 -> ok
    end.

%% @private Runs a registered function for Python, in this (the calling) process, and
%% answers. Calls it makes to Python carry the callback handle, so a call back
%% into the same context is served by the thread waiting for this answer.
-spec run_callback(reference(), binary(), list()) -> ok.
run_callback(Cb, Name, Args) ->
    Result = case py_callback_registry:lookup(Name) of
                 {ok, Fun} ->
                     Outer = put(?CHAIN, Cb),
                     try {ok, invoke(Fun, Args)}
                     catch
                         Class:Reason -> {error, iolist_to_binary(io_lib:format("~p: ~0p", [Class, Reason]))}
                     after
                         restore(?CHAIN, Outer)
                     end;
                 error ->
                     {error, {unknown_function, Name}}
             end,
    case py_nif:callback_reply(Cb, Result) of
        %% too large to decode on this scheduler in one time slice
        dirty -> py_nif:callback_reply_dirty(Cb, Result);
        _ -> ok
    end,
    ok.

invoke(Fun, Args) when is_function(Fun, 1) -> Fun(Args);
invoke(Fun, Args) when is_function(Fun, length(Args)) -> apply(Fun, Args);
invoke({M, F}, Args) -> apply(M, F, Args);
invoke(Fun, Args) -> error({bad_arity, Fun, length(Args)}).

restore(Key, undefined) -> erase(Key);
restore(Key, Value) -> put(Key, Value).

%% An atom goes to the NIF as it is (it keeps atoms' names by the atom: no
%% binary is made per call); a binary or a string is checked to be UTF-8 here.
name(A, _) when is_atom(A) -> A;
name(B, What) when is_binary(B) -> utf8(B, What);
name(L, What) when is_list(L) -> chars(L, What);
name(_, What) -> bad(What, <<" name must be an atom, binary or string">>).

text(A) when is_atom(A) -> atom_to_binary(A, utf8);
text(B) -> B.

code(B) when is_binary(B) -> no_nul(utf8(B, code));
code(L) when is_list(L) -> no_nul(chars(L, code));
code(_) -> bad(code, <<" must be a binary or a string">>).

no_nul(Code) ->
    case binary:match(Code, <<0>>) of
        nomatch -> Code;
        _ -> bad(code, <<" contains a NUL byte">>)
    end.

list(L) when is_list(L) -> L;
list(_) -> bad(arguments, <<" must be a list">>).

kwargs(M) when is_map(M) -> M;
kwargs(_) -> bad(keyword_arguments, <<" must be a map">>).

locals(M) when is_map(M) -> M;
locals(_) -> bad(locals, <<" must be a map">>).

utf8(B, What) ->
    case unicode:characters_to_binary(B) of
        Bin when is_binary(Bin) -> Bin;
        _ -> bad(What, <<" is not valid UTF-8">>)
    end.

chars(L, What) ->
    try unicode:characters_to_binary(L) of
        Bin when is_binary(Bin) -> Bin;
        _ -> bad(What, <<" is not a valid string">>)
    catch
        error:_ -> bad(What, <<" is not a valid string">>)
    end.

bad(What, Why) ->
    throw({bad_argument, <<(atom_to_binary(What, utf8))/binary, Why/binary>>}).
