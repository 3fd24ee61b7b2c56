%% @private
%% @doc Where Python `logging' records arrive (see {@link py:configure_logging/1}):
%% each becomes a `logger' event with the level mapped and the record's metadata.
%% The NIF sends at most 10,000 records ahead of this server and drops the rest
%% (counted), so a Python loop that logs never waits and never fills this mailbox
%% without bound; this server tells the NIF each record it handled.
-module(py_logging).
-behaviour(gen_server).

-export([start_link/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

-spec init([]) -> {ok, #{}}.
init([]) ->
    {ok, #{}}.

-spec handle_call(term(), gen_server:from(), map()) -> {reply, {error, unknown_call}, map()}.
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_call}, State}.

-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info({py_log, PyLevel, Logger, Message, File, Line, Traceback, Context}, State) ->
    Meta0 = #{domain => [erlang_python, python_logging], python_logger => Logger,
              file => File, line => Line, context => Context},
    {Format, Args, Meta} = case Traceback of
                               undefined -> {"~ts", [Message], Meta0};
                               _ -> {"~ts~n~ts", [Message, Traceback], Meta0#{traceback => Traceback}}
                           end,
    logger:log(level(PyLevel), Format, Args, Meta),
    ok = py_nif:logging_handled(1),
    {noreply, State};
handle_info(_Other, State) ->
    {noreply, State}.

level(L) when L >= 50 -> critical;
level(L) when L >= 40 -> error;
level(L) when L >= 30 -> warning;
level(L) when L >= 20 -> info;
level(_) -> debug.
