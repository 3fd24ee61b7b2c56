%% @doc Python across a cluster of BEAM nodes.
%%
%% Every node running erlang_python has one `py_cluster' process (under the
%% application's supervisor). It joins the group `erlang_python' of the `pg'
%% scope `py_cluster_pg' once per context of its node, and leaves it when the
%% application stops (the `pg' scope drops a member that exits, on every node).
%% The group is therefore both the discovery and the weights: {@link nodes/0}
%% and {@link parallel/1} read it from `pg''s table, without a server call, and
%% a node that comes back is used again as soon as its process rejoins.
%%
%% A remote call is one process spawned on the target node with
%% `erlang:spawn_request/5' and monitored by the caller. It runs the call there
%% with `py' (so routing, the semaphore, timeouts, callbacks and output are the
%% remote node's own) and exits with the result as its exit reason: the monitor's
%% `DOWN' message carries the answer, one message each way, as `erpc' does. The
%% same monitor turns the node going away into `{error, {nodedown, Node}}' at
%% once, with no wait for the timeout. The other direction is watched too: a
%% small process beside the call monitors the caller, so a caller that dies, or
%% whose node disconnects, kills the call's process, which cancels its Python
%% call as any caller death does. A caller's timeout needs no message: the
%% remote call is given the same deadline, and its `py' call interrupts the
%% Python when it passes, as a local call's does.
%%
%% Terms cross as distributed Erlang carries them: a pid stays a pid, and
%% `erlang.send' from the remote Python reaches it (the NIF can send to local
%% processes only: this process relays messages to pids of other nodes). A call's `print' output goes
%% to the caller's group leader.
-module(py_cluster).
-behaviour(gen_server).

-export([nodes/0, call/4, call/5, parallel/1]).
-export([start_link/0, init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2,
         leave/0, refresh/0, serve/2, scope_spec/0]).

-export_type([call_opts/0]).

-define(SCOPE, py_cluster_pg).
-define(GROUP, erlang_python).

%% `context': a context number of the remote node, `main', or the name of one of
%% its pools (the calling process's context of that pool there).
-type call_opts() :: #{timeout => timeout(), kwargs => py:kwargs(),
                       context => pos_integer() | main | atom()}.
%% How many times this node's process is in the group; `left' once stopping.
-type joined() :: non_neg_integer() | left.
-type job() :: {call, py:name(), py:name(), list(), call_opts()}
             | {parallel, [{py:name(), py:name(), list()}], timeout()}.

%%% API

%% @doc The connected nodes running erlang_python, this one included, sorted.
-spec nodes() -> [node()].
nodes() ->
    [N || {N, _} <- weights()].

%% @doc {@link call/5} with no options.
-spec call(Node :: node(), Module :: py:name(), Function :: py:name(), Args :: list()) ->
          {ok, py:value()} | {error, term()}.
call(Node, Module, Function, Args) ->
    call(Node, Module, Function, Args, #{}).

%% @doc Calls `Module.Function(*Args)' on `Node', as {@link py:call/5} does
%% there, and returns what it returns. `Opts': `timeout' (this node's
%% `call_timeout' by default; when it passes, the remote call is cancelled and
%% its Python interrupted), `kwargs', `context'. `{error, {nodedown, Node}}'
%% when the node goes away with the call in flight; `{error, {not_running,
%% Node}}' when the node cannot be reached or does not run erlang_python.
-spec call(Node :: node(), Module :: py:name(), Function :: py:name(), Args :: list(),
           Opts :: call_opts()) -> {ok, py:value()} | {error, term()}.
call(Node, Module, Function, Args, Opts) when is_atom(Node), is_list(Args), is_map(Opts) ->
    case valid_opts(Opts) of
        ok ->
            Timeout = maps:get(timeout, Opts, default_timeout()),
            Job = {call, Module, Function, Args, Opts#{timeout => Timeout}},
            case Node =:= node() of
                true -> run(Job);
                false -> wait_one(Node, start(Node, Job), Timeout)
            end;
        {error, _} = E ->
            E
    end;
call(_Node, _Module, _Function, _Args, _Opts) ->
    {error, {bad_argument, <<"py_cluster:call(Node, Module, Function, Args, Opts): "
                             "Node an atom, Args a list, Opts a map">>}}.

%% @doc Runs the calls side by side over every node's contexts, in proportion
%% to their number (each node's share runs with {@link py:parallel/1} there),
%% and returns one result per call in input order: `{ok, [{ok, V} | {error,
%% E}]}'. A node that goes down answers each of its calls `{error, {nodedown,
%% Node}}'; the others are not affected. One `call_timeout' for the batch.
-spec parallel(Calls :: [{py:name(), py:name(), list()}]) ->
          {ok, [{ok, py:value()} | {error, term()}]} | {error, {bad_argument, binary()}}.
parallel([]) ->
    {ok, []};
parallel(Calls) when is_list(Calls), length(Calls) >= 0 ->
    Timeout = default_timeout(),
    case slots(weights()) of
        [] -> py:parallel(Calls);
        Slots ->
            Shares = share(lists:enumerate(Calls), Slots, Slots, #{}),
            Started = [{Node, lists:reverse(Is),
                        start(Node, {parallel, lists:reverse(Cs), Timeout})}
                       || {Node, {Is, Cs}} <- maps:to_list(Shares)],
            Deadline = deadline(Timeout),
            Answers = lists:append([answer_all(Node, Is, wait_one(Node, Req, remaining(Deadline)))
                                    || {Node, Is, Req} <- Started]),
            {ok, [R || {_, R} <- lists:keysort(1, Answers)]}
    end;
parallel(_Calls) ->
    {error, {bad_argument, <<"calls must be a list of {Module, Function, Args}">>}}.

%%% Served on the node that runs the call

%% @private The process `start/2' spawns on the target node: runs `Job' and
%% exits with its result, which the caller's monitor delivers.
-spec serve(Caller :: pid(), Job :: job()) -> no_return().
serve(Caller, Job) ->
    case whereis(?MODULE) of
        undefined -> exit({?MODULE, {error, {not_running, node()}}});
        _ -> ok
    end,
    Self = self(),
    _ = spawn(fun() -> watch(Caller, Self) end),
    exit({?MODULE, run(Job)}).

%% Kills the call's process if its caller goes (or its node disconnects) first.
watch(Caller, Call) ->
    OnCaller = erlang:monitor(process, Caller),
    OnCall = erlang:monitor(process, Call),
    receive
        {'DOWN', OnCaller, process, _, _} -> exit(Call, kill);
        {'DOWN', OnCall, process, _, _} -> erlang:demonitor(OnCaller, [flush])
    end.

run({call, Module, Function, Args, Opts}) ->
    Timeout = maps:get(timeout, Opts),
    Kwargs = maps:get(kwargs, Opts, #{}),
    case maps:find(context, Opts) of
        error -> py:call(Module, Function, Args, Kwargs, Timeout);
        {ok, Ctx} -> py:call(context(Ctx), Module, Function, Args,
                             #{kwargs => Kwargs, timeout => Timeout})
    end;
run({parallel, Calls, Timeout}) ->
    py:parallel(Calls, Timeout).

context(N) when is_integer(N) -> py:context(N);
context(main) -> py:context(main);
context(Pool) when is_atom(Pool) -> py:pool(Pool).

%%% On the caller's side

start(Node, Job) ->
    erlang:spawn_request(Node, ?MODULE, serve, [self(), Job], [monitor, {reply, error_only}]).

%% The answer of the call process `Req' (a spawn request, also its monitor).
wait_one(Node, Req, Timeout) ->
    receive
        {'DOWN', Req, process, _, {?MODULE, Result}} -> Result;
        {'DOWN', Req, process, _, noconnection} -> {error, {nodedown, Node}};
        {'DOWN', Req, process, _, {undef, _}} -> {error, {not_running, Node}};
        {'DOWN', Req, process, _, Other} -> {error, {remote_exit, Node, Other}};
        {spawn_reply, Req, error, _} -> {error, {not_running, Node}}
    after Timeout ->
        cancel(Req)
    end.

%% Gives up on a call: the remote side has the same deadline, so its `py'
%% call interrupts the Python at its end; its answer is not waited for.
cancel(Req) ->
    _ = erlang:spawn_request_abandon(Req),
    erlang:demonitor(Req, [flush]),
    receive {spawn_reply, Req, _, _} -> ok after 0 -> ok end,
    {error, timeout}.

answer_all(_Node, Is, {ok, Results}) when length(Results) =:= length(Is) ->
    lists:zip(Is, Results);
answer_all(_Node, Is, {error, _} = E) ->
    [{I, E} || I <- Is].

%% Every context of every node, one slot each, interleaved (each node's first
%% context, then each node's second...), so that fewer calls than contexts
%% still reach every node.
slots(Weights) ->
    Max = lists:max([0 | [W || {_, W} <- Weights]]),
    [N || Rank <- lists:seq(1, Max), {N, W} <- Weights, W >= Rank].

share([], _Slots, _All, Acc) ->
    Acc;
share(Calls, [], All, Acc) ->
    share(Calls, All, All, Acc);
share([{I, Call} | Calls], [Node | Slots], All, Acc) ->
    {Is, Cs} = maps:get(Node, Acc, {[], []}),
    share(Calls, Slots, All, Acc#{Node => {[I | Is], [Call | Cs]}}).

%% [{Node, Contexts}] of the group, sorted by node.
weights() ->
    try pg:get_members(?SCOPE, ?GROUP) of
        Members ->
            Counts = lists:foldl(fun(P, Acc) -> maps:update_with(node(P), fun(C) -> C + 1 end, 1, Acc) end,
                                 #{}, Members),
            lists:sort(maps:to_list(Counts))
    catch
        error:badarg -> []
    end.

valid_opts(Opts) ->
    Bad = maps:filter(fun(timeout, T) -> not (T =:= infinity orelse (is_integer(T) andalso T >= 0 andalso T =< 16#ffffffff));
                         (kwargs, K) -> not is_map(K);
                         (context, C) -> not ((is_integer(C) andalso C >= 1) orelse is_atom(C));
                         (_, _) -> true
                      end, Opts),
    case maps:keys(Bad) of
        [] -> ok;
        Keys -> {error, {bad_argument, iolist_to_binary(io_lib:format("bad py_cluster options: ~p", [Keys]))}}
    end.

default_timeout() ->
    erlang_python_app:call_timeout().

deadline(infinity) -> infinity;
deadline(T) -> erlang:monotonic_time(millisecond) + T.

remaining(infinity) -> infinity;
remaining(D) -> max(0, D - erlang:monotonic_time(millisecond)).

%%% The group member

%% @private The `pg' scope of the cluster group, started before this process.
-spec scope_spec() -> supervisor:child_spec().
scope_spec() ->
    #{id => ?SCOPE, start => {pg, start_link, [?SCOPE]}}.

%% @private
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @private Leaves the group: the application is stopping (its `prep_stop'),
%% so other nodes stop sending calls here before the contexts go.
-spec leave() -> ok.
leave() ->
    try gen_server:call(?MODULE, leave, 5000)
    catch exit:_ -> ok
    end.

%% @private Re-reads this node's number of contexts (the router calls it after
%% starting or stopping them).
-spec refresh() -> ok.
refresh() ->
    gen_server:cast(?MODULE, refresh).

%% @private
-spec init([]) -> {ok, joined()}.
init([]) ->
    {ok, join(0)}.

%% @private
-spec handle_call(leave | term(), gen_server:from(), joined()) -> {reply, ok | {error, unknown_call}, joined()}.
handle_call(leave, _From, Joined) ->
    ok = leave(Joined),
    {reply, ok, left};
handle_call(_Msg, _From, Joined) ->
    {reply, {error, unknown_call}, Joined}.

%% @private
-spec handle_cast(refresh | term(), joined()) -> {noreply, joined()}.
handle_cast(refresh, Joined) when is_integer(Joined) ->
    {noreply, join(Joined)};
handle_cast(_Msg, Joined) ->
    {noreply, Joined}.

%% @private
-spec handle_info({'$py_relay', pid(), term()} | term(), joined()) -> {noreply, joined()}.
handle_info({'$py_relay', To, Msg}, Joined) ->
    To ! Msg,
    {noreply, Joined};
handle_info(_Msg, Joined) ->
    {noreply, Joined}.

%% @private
-spec terminate(term(), joined()) -> ok.
terminate(_Reason, Joined) ->
    leave(Joined).

%% Joins the group once per context of this node (at least once: a node with
%% no contexts still answers calls).
join(Joined) ->
    Want = max(1, py_context_router:num_contexts()),
    if
        Want > Joined -> ok = pg:join(?SCOPE, ?GROUP, lists:duplicate(Want - Joined, self()));
        Want < Joined -> ok = pg:leave(?SCOPE, ?GROUP, lists:duplicate(Joined - Want, self()));
        true -> ok
    end,
    Want.

leave(Joined) when is_integer(Joined), Joined > 0 ->
    _ = pg:leave(?SCOPE, ?GROUP, lists:duplicate(Joined, self())),
    ok;
leave(_) ->
    ok.
