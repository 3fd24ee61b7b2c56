%% @doc Top supervisor of erlang_python. Executors and contexts are Rust actors
%% supervised by the router actor on the Rust side; Erlang-side services hang here.
-module(erlang_python_sup).
-behaviour(supervisor).
-export([start_link/0, init/1]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    Router = #{id => py_context_router, start => {py_context_router, start_link, []}},
    Callbacks = #{id => py_callback_registry, start => {py_callback_registry, start_link, []}},
    Trace = #{id => py_trace, start => {py_trace, start_link, []}},
    Casts = #{id => py_cast_sink, start => {py_cast_sink, start_link, []}},
    Logging = #{id => py_logging, start => {py_logging, start_link, []}},
    %% last: the node joins the cluster group once everything else serves
    Cluster = #{id => py_cluster, start => {py_cluster, start_link, []}},
    {ok, {#{strategy => one_for_one, intensity => 10, period => 10},
          [Router, Callbacks, Trace, Casts, Logging, py_cluster:scope_spec(), Cluster]}}.
