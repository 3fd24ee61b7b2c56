%% @doc The rate limit on Python requests.
%%
%% Every Python call of every API takes a permit before it is queued and returns
%% it when the request ends, however it ends (answered, timed out, its caller died,
%% its context failed). When none is free, a call waits in a queue, in arrival
%% order: each permit returned is handed to the first waiter at once (no polling,
%% and no newcomer overtakes a waiter). A call leaves the queue with
%% `{error, {overloaded, Current, Max}}' only when it has waited `overload_wait'
%% (application env, ms, default 1000, never longer than the call's own timeout).
%%
%% The counter is an atomic in the NIF rather than an ETS table: acquiring is a
%% compare-and-swap in the same NIF call that queues the request, and releasing is
%% tied to the request's lifetime, so no permit can be lost.
-module(py_semaphore).

-export([max_concurrent/0, current/0, waiting/0, set_max_concurrent/1, default_max/0]).

%% @doc The limit (default `schedulers * 2 + 1', application env `max_concurrent').
-spec max_concurrent() -> pos_integer().
max_concurrent() ->
    case py_nif:semaphore_get(max) of
        %% not set yet (the application never started): what it will be
        16#ffffffffffffffff -> application:get_env(erlang_python, max_concurrent, default_max());
        Max -> Max
    end.

%% @doc Requests in flight now (queued or running in Python).
-spec current() -> non_neg_integer().
current() ->
    py_nif:semaphore_get(current).

%% @doc Requests waiting for a permit now.
-spec waiting() -> non_neg_integer().
waiting() ->
    py_nif:semaphore_get(waiting).

%% @doc Sets the limit, at once, also when lowered under load (requests already
%% in flight finish; new ones wait until the count is under the new limit; raising it serves
%% waiting ones at once).
-spec set_max_concurrent(pos_integer()) -> ok | {error, {bad_argument, binary()}}.
set_max_concurrent(N) when is_integer(N), N >= 1, N < 1 bsl 63 ->
    py_nif:semaphore_set_max(N);
set_max_concurrent(_) ->
    {error, {bad_argument, <<"max_concurrent must be a positive integer">>}}.

%% @doc `schedulers * 2 + 1'.
-spec default_max() -> pos_integer().
default_max() ->
    erlang:system_info(schedulers) * 2 + 1.
