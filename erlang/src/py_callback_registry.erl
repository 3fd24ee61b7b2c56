%% @private
%% @doc Owns the table of Erlang functions Python may call (`erlang.call',
%% `from erlang import name'). Lookups read the table directly.
-module(py_callback_registry).
-behaviour(gen_server).

-export([start_link/0, register/2, unregister/1, lookup/1]).
-export([init/1, handle_call/3, handle_cast/2]).

-define(TABLE, py_callbacks).

-type callback() :: fun((list()) -> term()) | function() | {module(), atom()}.

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

-spec register(binary(), callback()) -> ok.
register(Name, Fun) ->
    gen_server:call(?MODULE, {register, Name, Fun}).

-spec unregister(binary()) -> ok.
unregister(Name) ->
    gen_server:call(?MODULE, {unregister, Name}).

-spec lookup(binary()) -> {ok, callback()} | error.
lookup(Name) ->
    try ets:lookup(?TABLE, Name) of
        [{_, Fun}] -> {ok, Fun};
        [] -> error
    catch
        error:badarg -> error
    end.

-spec init([]) -> {ok, []}.
init([]) ->
    ?TABLE = ets:new(?TABLE, [named_table, protected, {read_concurrency, true}]),
    %% a fresh table: Python's view of the names starts empty too
    ok = py_nif:callback_registry_reset(),
    {ok, []}.

-spec handle_call(term(), gen_server:from(), []) -> {reply, ok, []}.
handle_call({register, Name, Fun}, _From, State) ->
    true = ets:insert(?TABLE, {Name, Fun}),
    ok = py_nif:callback_registered(Name, true),
    {reply, ok, State};
handle_call({unregister, Name}, _From, State) ->
    true = ets:delete(?TABLE, Name),
    ok = py_nif:callback_registered(Name, false),
    {reply, ok, State}.

-spec handle_cast(term(), []) -> {noreply, []}.
handle_cast(_Msg, State) ->
    {noreply, State}.
