%% @doc Contexts and routing.
%%
%% A context is a Python interpreter owned by an actor pinned to its own thread
%% (an OWN_GIL sub-interpreter in `subinterp' mode; a separate globals namespace
%% on the main interpreter in `multi_executor' mode). Contexts are isolated: names
%% defined in one are not visible in another.
%%
%% Routing: a process bound with {@link bind_context/1} always uses that context.
%% An unbound process gets a context chosen by the scheduler it runs on, and then
%% sticks to it, so `py:exec/1' followed by `py:call('__main__', F, Args)' from the
%% same process always meets the function it defined. Bindings live in the process
%% dictionary: they vanish when the process exits.
%%
%% This module is also the gen_server that serialises starting and stopping
%% contexts (the work itself is done by the router actor in Rust); routing reads a
%% `persistent_term' and never calls the server.
-module(py_context_router).
-behaviour(gen_server).

-export([start/0, start/1, stop/0, get_context/0, get_context/1,
         bind_context/1, unbind_context/0, num_contexts/0, contexts/0]).
-export([start_link/0, init/1, handle_call/3, handle_cast/2, unpublish/0]).

-export_type([context/0]).

-opaque context() :: {py_context, pos_integer() | main}.

-define(KEY, {?MODULE, contexts}).
-define(BOUND, '$py_bound_context').
-define(STICKY, '$py_sticky_context').
-define(TIMEOUT, 120000).

%%% API

%% @doc Starts the default number of contexts (`num_contexts', default: one per
%% scheduler), replacing any running ones.
-spec start() -> {ok, [context()]} | {error, term()}.
start() ->
    start(#{}).

%% @doc Starts `#{contexts => N}' contexts (1..64), replacing any running ones.
-spec start(#{contexts => pos_integer()}) -> {ok, [context()]} | {error, term()}.
start(Opts) when is_map(Opts) ->
    N = maps:get(contexts, Opts, default_contexts()),
    case is_integer(N) andalso N >= 1 andalso N =< 64 of
        true -> gen_server:call(?MODULE, {start, N}, ?TIMEOUT);
        false -> {error, {bad_argument, <<"contexts must be an integer from 1 to 64">>}}
    end.

%% @doc Stops every context. Calls in flight are answered (with their result, or
%% `{error, context_stopped}'); unbound calls then run on the main interpreter.
-spec stop() -> ok.
stop() ->
    gen_server:call(?MODULE, stop, ?TIMEOUT).

%% @doc The context of the calling process: its bound one, else its sticky one,
%% else one picked by scheduler affinity (which then sticks). `{py_context, main}'
%% when no contexts run.
-spec get_context() -> context().
get_context() ->
    case get(?BOUND) of
        undefined -> sticky_context();
        Ctx -> Ctx
    end.

%% @doc Context number `N' (1-based), or `main' for the main interpreter.
-spec get_context(pos_integer() | main) -> context().
get_context(main) -> {py_context, main};
get_context(N) when is_integer(N), N >= 1 -> {py_context, N}.

%% @doc Binds the calling process to `Ctx' until {@link unbind_context/0} or exit.
-spec bind_context(context()) -> ok.
bind_context({py_context, _} = Ctx) ->
    put(?BOUND, Ctx),
    ok.

%% @doc Returns the calling process to scheduler-affinity routing.
-spec unbind_context() -> ok.
unbind_context() ->
    erase(?BOUND),
    ok.

%% @doc How many contexts run.
-spec num_contexts() -> non_neg_integer().
num_contexts() ->
    {N, _Gen} = persistent_term:get(?KEY, {0, 0}),
    N.

%% @doc Every running context.
-spec contexts() -> [context()].
contexts() ->
    [{py_context, I} || I <- lists:seq(1, num_contexts())].

%%% gen_server

%% @private
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @private
-spec init([]) -> {ok, non_neg_integer()}.
init([]) ->
    publish(maps:get(<<"num_contexts">>, py_nif:info())),
    {ok, 0}.

%% @private
-spec handle_call({start, pos_integer()} | stop, gen_server:from(), term()) ->
          {reply, term(), term()}.
handle_call({start, N}, _From, State) ->
    Tag = make_ref(),
    Reply = case wait(py_nif:start_contexts(N, Tag), Tag) of
                ok -> publish(N), {ok, contexts()};
                {error, _} = E -> publish(maps:get(<<"num_contexts">>, py_nif:info())), E
            end,
    {reply, Reply, State};
handle_call(stop, _From, State) ->
    publish(0),
    Tag = make_ref(),
    ok = wait(py_nif:stop_contexts(Tag), Tag),
    {reply, ok, State}.

%% @private
-spec handle_cast(term(), term()) -> {noreply, term()}.
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private Forgets the contexts (the application is stopping).
-spec unpublish() -> ok.
unpublish() ->
    publish(0).

%%% Internal

%% @private
-spec default_contexts() -> pos_integer().
default_contexts() ->
    application:get_env(erlang_python, num_contexts, erlang:system_info(schedulers)).

wait(ok, Tag) ->
    receive {py_started, Tag, R} -> R
    after ?TIMEOUT -> {error, timeout}
    end.

publish(N) ->
    {_, Gen} = persistent_term:get(?KEY, {0, 0}),
    persistent_term:put(?KEY, {N, Gen + 1}),
    ok.

sticky_context() ->
    case persistent_term:get(?KEY, {0, 0}) of
        {0, _} ->
            {py_context, main};
        {N, Gen} ->
            case get(?STICKY) of
                {Ctx, Gen} ->
                    Ctx;
                _ ->
                    Ctx = {py_context, (erlang:system_info(scheduler_id) - 1) rem N + 1},
                    put(?STICKY, {Ctx, Gen}),
                    Ctx
            end
    end.
