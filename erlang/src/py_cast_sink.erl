%% @private
%% @doc Where casts report. A cast's caller does not wait, so what its Python
%% code has to say goes here instead: an error (with its traceback) is logged as a
%% warning under the `[erlang_python]' domain, never dropped silently; an Erlang
%% function its Python code calls runs in a fresh process (the cast's Python
%% thread waits for it, not this server). So do those of a `py:spawn_call',
%% whose caller waits for nothing until it awaits (with the caller's group
%% leader), and of Python threads that serve no request. Successful results never arrive: the
%% NIF drops them.
-module(py_cast_sink).
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
handle_info({py_reply, _Tag, {error, Reason}, Traceback}, State) ->
    logger:warning("erlang_python: a cast raised ~0tp~n~ts", [Reason, Traceback],
                   #{domain => [erlang_python], reason => Reason}),
    {noreply, State};
handle_info({py_reply, _Tag, {error, Reason}}, State) ->
    logger:warning("erlang_python: a cast failed: ~0tp", [Reason],
                   #{domain => [erlang_python], reason => Reason}),
    {noreply, State};
handle_info({py_callback, Tag, Cb, Name, Args}, State) ->
    _ = spawn(fun() -> take_leader(Tag), py:run_callback(Cb, Name, Args) end),
    {noreply, State};
handle_info({py_output, _From, Fd, Text}, State) ->
    %% printed by a cast, or by Python code that serves no request (threads,
    %% asyncio tasks, stream steps): nobody's group leader is waiting for it
    case string:trim(Text, trailing) of
        <<>> -> ok;
        Line ->
            Level = case Fd of 2 -> warning; _ -> notice end,
            logger:log(Level, "python ~ts: ~ts", [case Fd of 2 -> "stderr"; _ -> "stdout" end, Line],
                       #{domain => [erlang_python, python_output]})
    end,
    {noreply, State};
handle_info(_Other, State) ->
    {noreply, State}.

%% A spawned call's callback comes with its caller (`{Tag, Caller}'): its
%% process takes the caller's group leader, so that what it prints goes where
%% the caller's output goes. A cast's runs with the application's.
take_leader({_Tag, Caller}) when is_pid(Caller) ->
    case erlang:process_info(Caller, group_leader) of
        {group_leader, Leader} -> group_leader(Leader, self());
        undefined -> ok
    end;
take_leader(_Tag) ->
    ok.
