%% @doc Request tracing through Erlang's `logger'.
%%
%% Every Python request runs in a `tracing' span on the Rust side (op, context,
%% caller pid, module, function, duration), and calls slower than a threshold
%% raise a `slow call' warning. Nothing is collected while the level is `none'
%% (the default). At any other level this process receives the entries and logs
%% them with `logger', domain `[erlang_python]', the fields as metadata.
%%
%% Application env: `trace_level' (`none | error | warning | notice | info |
%% debug', default `none'; request spans are `debug', slow calls `warning') and
%% `slow_call_ms' (default 1000, or `infinity').
-module(py_trace).
-behaviour(gen_server).

-export([start_link/0, set_level/1, level/0, set_slow_call_ms/1, valid_level/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-export_type([level/0]).

-type level() :: none | error | warning | notice | info | debug.

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Sets the level at run time: `none' stops collecting.
-spec set_level(level()) -> ok | {error, not_started | {bad_level, term()}}.
set_level(Level) ->
    case valid_level(Level) of
        true -> server_call({set, level, Level});
        false -> {error, {bad_level, Level}}
    end.

%% @doc The level in force.
-spec level() -> level() | {error, not_started}.
level() ->
    server_call(level).

%% @doc Calls running at least `Ms' milliseconds are logged as slow (at
%% `warning'); `infinity' turns that off.
-spec set_slow_call_ms(pos_integer() | infinity) -> ok | {error, not_started | {bad_slow_call_ms, term()}}.
set_slow_call_ms(Ms) when Ms =:= infinity; is_integer(Ms), Ms >= 0, Ms < 1 bsl 54 ->
    server_call({set, slow_call_ms, Ms});
set_slow_call_ms(Ms) ->
    {error, {bad_slow_call_ms, Ms}}.

%% The server, which is not there when the application does not run.
server_call(Request) ->
    try gen_server:call(?MODULE, Request)
    catch exit:{noproc, _} -> {error, not_started}
    end.

%% @private
-spec valid_level(term()) -> boolean().
valid_level(L) ->
    lists:member(L, [none, error, warning, notice, info, debug]).

%% @private
-spec init([]) -> {ok, map()}.
init([]) ->
    State = #{level => application:get_env(erlang_python, trace_level, none),
              slow_call_ms => application:get_env(erlang_python, slow_call_ms, 1000)},
    ok = apply_config(State),
    {ok, State}.

%% @private
-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call(level, _From, State = #{level := L}) ->
    {reply, L, State};
handle_call({set, Key, Value}, _From, State) ->
    New = State#{Key => Value},
    case apply_config(New) of
        ok -> {reply, ok, New};
        {error, _} = E -> {reply, E, State}
    end.

%% @private
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private
-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info({py_trace, Level, Message, Fields}, State) ->
    Text = [[$\s, atom_to_list(K), $=, value(V)] || {K, V} <- lists:sort(maps:to_list(Fields)), is_atom(K)],
    logger:log(Level, "erlang_python: ~ts~ts", [Message, Text], Fields#{domain => [erlang_python]}),
    {noreply, State};
handle_info(_Other, State) ->
    {noreply, State}.

apply_config(#{level := Level, slow_call_ms := Ms}) ->
    SlowUs = case Ms of infinity -> 16#ffffffffffffffff; _ -> Ms * 1000 end,
    try py_nif:trace_config(self(), level_number(Level), SlowUs) of
        ok -> ok;
        {error, Msg} -> {error, {trace_config, Msg}}
    catch
        error:badarg -> {error, {trace_config, <<"value out of range">>}}
    end.

level_number(none) -> 0;
level_number(error) -> 1;
level_number(warning) -> 2;
level_number(notice) -> 3;
level_number(info) -> 3;
level_number(debug) -> 4.

value(V) when is_binary(V) -> V;
value(V) -> io_lib:format("~p", [V]).
