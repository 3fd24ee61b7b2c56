%% @doc Contexts, pools and routing.
%%
%% A context is a Python interpreter owned by an actor pinned to its own thread
%% (an OWN_GIL sub-interpreter in `subinterp' mode; a separate globals namespace
%% on the main interpreter in `multi_executor' mode). Contexts are isolated: names
%% defined in one are not visible in another.
%%
%% Routing is done by the router actor in Rust (`src/actors/routing.rs'), from
%% the NIF call itself, without a message: a process bound with
%% {@link bind_context/1} always uses that context; an unbound process is placed,
%% on its first request, on the least loaded context (processes placed there and
%% requests in flight), and then sticks to it, so `py:exec/1' followed by
%% `py:call('__main__', F, Args)' from one process always meets the function it
%% defined. Bindings and placements vanish when the process exits (the NIF
%% monitors it). An unbound `call' naming a module that refused to load in a
%% sub-interpreter (numpy, `_ctypes' on 3.12) runs on the main interpreter.
%%
%% Pools are more contexts reserved for a name (say `io' beside the default
%% ones): {@link start_pool/2}, then `py:pool(io)' wherever a context is taken.
%%
%% This module is also the gen_server that serialises starting and stopping
%% contexts and pools (the work itself is done by the router actor); routing
%% never calls the server.
-module(py_context_router).
-behaviour(gen_server).

-export([start/0, start/1, stop/0, get_context/0, get_context/1,
         bind_context/1, unbind_context/0, num_contexts/0, contexts/0,
         start_pool/2, stop_pool/1, pool/1, pools/0]).
-export([start_link/0, init/1, handle_call/3, handle_cast/2, unpublish/0]).

-export_type([context/0]).

%% A context: number N (1-based), `main' (the main interpreter), or a pool's
%% (a process's own context of that pool, placed on its first request).
-type context() :: {py_context, pos_integer() | main | {pool, atom()}}.

-define(KEY, {?MODULE, contexts}).
-define(TIMEOUT, 120000).

%%% API

%% @doc Starts the default number of contexts (`num_contexts', default: one per
%% scheduler), replacing any running ones.
-spec start() -> {ok, [context()]} | {error, term()}.
start() ->
    start(#{}).

%% @doc Starts `#{contexts => N}' contexts (1..64), replacing the running default
%% ones (pools stay).
-spec start(Opts :: #{contexts => pos_integer()}) -> {ok, [context()]} | {error, term()}.
start(Opts) when is_map(Opts) ->
    N = maps:get(contexts, Opts, default_contexts()),
    case valid_count(N) of
        true -> server_call({start, N});
        false -> {error, {bad_argument, <<"contexts must be an integer from 1 to 64">>}}
    end;
start(_Opts) ->
    {error, {bad_argument, <<"options must be a map">>}}.

%% @doc Stops every context, pools included. Calls in flight are answered (with
%% their result, or `{error, context_stopped}'); unbound calls then run on the
%% main interpreter.
-spec stop() -> ok | {error, not_started}.
stop() ->
    server_call(stop).

%% @doc The context of the calling process: its bound one, else the one it was
%% placed on (placing it now if it has none). `{py_context, main}' when no
%% contexts run.
-spec get_context() -> context().
get_context() ->
    case py_nif:route(auto) of
        {py_context, _} = Ctx -> Ctx;
        {error, _} -> {py_context, main}
    end.

%% @doc Context number `N' (1-based), or `main' for the main interpreter.
-spec get_context(Which :: pos_integer() | main) -> context() | {error, {bad_argument, binary()}}.
get_context(main) -> {py_context, main};
get_context(N) when is_integer(N), N >= 1, N < 1 bsl 32 -> {py_context, N};
get_context(_Which) -> {error, {bad_argument, <<"a context is a positive integer or main">>}}.

%% @doc Binds the calling process to `Ctx' until {@link unbind_context/0} or exit.
%% A pool's context (`py:pool(Name)') binds the process to that pool.
-spec bind_context(Ctx :: context()) -> ok | {error, {bad_argument, binary()}}.
bind_context({py_context, Target}) when Target =:= main; is_integer(Target), Target >= 1, Target < 1 bsl 32;
                                       is_tuple(Target), tuple_size(Target) =:= 2, element(1, Target) =:= pool,
                                       is_atom(element(2, Target)) ->
    py_nif:bind(Target);
bind_context(_Ctx) ->
    {error, {bad_argument, <<"not a context (py:context/0,1 or py:pool/1)">>}}.

%% @doc Returns the calling process to routing by placement.
-spec unbind_context() -> ok.
unbind_context() ->
    py_nif:bind(undefined).

%% @doc How many default contexts run.
-spec num_contexts() -> non_neg_integer().
num_contexts() ->
    persistent_term:get(?KEY, 0).

%% @doc Every running default context.
-spec contexts() -> [context()].
contexts() ->
    [{py_context, I} || I <- lists:seq(1, num_contexts())].

%% @doc Starts `#{contexts => N}' more contexts reserved for pool `Name' (say
%% `io', for calls that wait on I/O beside the CPU-bound default contexts).
%% `{error, _}' if a pool of that name runs, or pools would have more than 64
%% contexts in all.
%%
%% With `isolation => process', each context's interpreter runs in a child OS
%% process of its own, driven by the context's actor over pipes: a segfault,
%% `os._exit' or out-of-memory there ends that child only. The request in
%% flight answers `{error, {context_crashed, Why}}' (`Why' names the signal or
%% exit status) and the next request starts a new child, with `python_path',
%% `imports' and `preload_code' applied again. `memory_limit => Bytes' caps
%% each child's address space. Calls, eval, exec, streams (`stream_start'
%% too), refs, callbacks (`erlang.call'), `erlang.send', the shared state,
%% logging and output work there; asyncio calls and channels answer
%% `{error, {bad_argument, _}}'.
-spec start_pool(Name :: atom(), Opts :: #{contexts := pos_integer(),
                                           isolation => none | process,
                                           memory_limit => pos_integer() | infinity}) ->
          {ok, [context()]} | {error, term()}.
start_pool(Name, #{contexts := N} = Opts) when is_atom(Name) ->
    Isolation = case {maps:get(isolation, Opts, none), maps:get(memory_limit, Opts, infinity)} of
                    {none, infinity} -> none;
                    {process, L} when L =:= infinity; is_integer(L), L > 0 -> {process, L};
                    _ -> bad
                end,
    case valid_count(N) andalso Isolation =/= bad of
        true -> server_call({start_pool, Name, N, Isolation});
        false -> {error, {bad_argument, <<"start_pool(Name, #{contexts => 1..64, isolation => none | process, "
                                          "memory_limit => Bytes (with isolation => process)})">>}}
    end;
start_pool(_Name, _Opts) ->
    {error, {bad_argument, <<"start_pool(Name :: atom(), #{contexts => N})">>}}.

%% @doc Stops pool `Name''s contexts (calls in flight are answered as by
%% {@link stop/0}). No such pool: `ok'.
-spec stop_pool(Name :: atom()) -> ok | {error, not_started | {bad_argument, binary()}}.
stop_pool(Name) when is_atom(Name) ->
    server_call({stop_pool, Name});
stop_pool(_Name) ->
    {error, {bad_argument, <<"a pool's name is an atom">>}}.

%% @doc The calling process's context in pool `Name', placed like unbound
%% routing (least loaded on first use, then sticky). For a pool that does not
%% run, a context whose calls return `{error, {no_pool, Name}}'.
-spec pool(Name :: atom()) -> context() | {error, {bad_argument, binary()}}.
pool(Name) when is_atom(Name) ->
    case py_nif:route({pool, Name}) of
        {py_context, _} = Ctx -> Ctx;
        {error, _} -> {py_context, {pool, Name}}
    end;
pool(_Name) ->
    {error, {bad_argument, <<"a pool's name is an atom">>}}.

%% The server, which is not there when the application does not run.
server_call(Request) ->
    try gen_server:call(?MODULE, Request, ?TIMEOUT)
    catch exit:{noproc, _} -> {error, not_started}
    end.

%% @doc Running pools and their contexts.
-spec pools() -> #{atom() => [context()]}.
pools() ->
    #{pool := Pools} = py_nif:routes(),
    maps:map(fun(_, Ids) -> [{py_context, I} || I <- Ids] end, Pools).

%%% gen_server

%% @private
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @private
-spec init([]) -> {ok, non_neg_integer()}.
init([]) ->
    publish(),
    {ok, 0}.

%% @private
-spec handle_call({start, pos_integer()} | stop | {start_pool, atom(), pos_integer(), none | {process, pos_integer() | infinity}}
                  | {stop_pool, atom()}, gen_server:from(), term()) ->
          {reply, term(), term()}.
handle_call({start, N}, _From, State) ->
    Tag = make_ref(),
    Reply = case wait(py_nif:start_contexts(N, Tag), Tag) of
                ok -> publish(), {ok, contexts()};
                {error, _} = E -> publish(), E
            end,
    py_cluster:refresh(),
    {reply, Reply, State};
handle_call(stop, _From, State) ->
    persistent_term:put(?KEY, 0),
    Tag = make_ref(),
    ok = wait(py_nif:stop_contexts(Tag), Tag),
    publish(),
    py_cluster:refresh(),
    {reply, ok, State};
handle_call({start_pool, Name, N, Isolation}, _From, State) ->
    Tag = make_ref(),
    Reply = case wait(py_nif:start_pool(Name, N, Isolation, Tag), Tag) of
                {ok, Ids} -> {ok, [{py_context, I} || I <- Ids]};
                {error, _} = E -> E
            end,
    {reply, Reply, State};
handle_call({stop_pool, Name}, _From, State) ->
    Tag = make_ref(),
    {reply, wait(py_nif:stop_pool(Name, Tag), Tag), State}.

%% @private
-spec handle_cast(term(), term()) -> {noreply, term()}.
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private Forgets the contexts (the application is stopping).
-spec unpublish() -> ok.
unpublish() ->
    persistent_term:put(?KEY, 0).

%%% Internal

%% @private
-spec default_contexts() -> pos_integer().
default_contexts() ->
    application:get_env(erlang_python, num_contexts, erlang:system_info(schedulers)).

wait(ok, Tag) ->
    receive {py_started, Tag, R} -> R
    after ?TIMEOUT -> {error, timeout}
    end.

%% The default contexts' count, read by num_contexts/0 without the NIF.
publish() ->
    persistent_term:put(?KEY, maps:get(<<"num_contexts">>, py_nif:info())).

valid_count(N) ->
    is_integer(N) andalso N >= 1 andalso N =< 64.
