%% @private
%% @doc Owns the table of Erlang functions Python may call (`erlang.call',
%% `from erlang import name'). Lookups read the table directly.
-module(py_callback_registry).
-behaviour(gen_server).

-export([start_link/0, register/2, unregister/1, lookup/1]).
-export([init/1, handle_call/3, handle_cast/2]).

-define(TABLE, py_callbacks).
-define(BAD_NAME, {error, {bad_argument, <<"a function's name must be an atom or UTF-8 text">>}}).

-type callback() :: fun((list()) -> term()) | function() | {module(), atom()}.

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

-spec register(binary(), callback()) -> ok | {error, not_started | {bad_argument, binary()}}.
register(Name, Fun) ->
    call({register, Name, Fun}).

-spec unregister(binary()) -> ok | {error, not_started | {bad_argument, binary()}}.
unregister(Name) ->
    call({unregister, Name}).

%% The application may not run: `{error, not_started}', not an exit.
call(Request) ->
    try gen_server:call(?MODULE, Request)
    catch exit:{noproc, _} -> {error, not_started}
    end.

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

-spec handle_call(term(), gen_server:from(), []) -> {reply, ok | {error, {bad_argument, binary()}}, []}.
handle_call({register, Name, Fun}, _From, State) ->
    case valid_name(Name) of
        true ->
            true = ets:insert(?TABLE, {Name, Fun}),
            ok = py_nif:callback_registered(Name, true),
            {reply, ok, State};
        false ->
            {reply, ?BAD_NAME, State}
    end;
handle_call({unregister, Name}, _From, State) ->
    case valid_name(Name) of
        true ->
            true = ets:delete(?TABLE, Name),
            ok = py_nif:callback_registered(Name, false),
            {reply, ok, State};
        false ->
            {reply, ?BAD_NAME, State}
    end.

%% A name Python can use: UTF-8 text (the NIF refuses anything else).
valid_name(Name) ->
    is_binary(Name) andalso unicode:characters_to_binary(Name) =:= Name.

-spec handle_cast(term(), []) -> {noreply, []}.
handle_cast(_Msg, State) ->
    {noreply, State}.
