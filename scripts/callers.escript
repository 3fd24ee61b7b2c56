#!/usr/bin/env escript
%%! -pa erlang/_build/default/lib/erlang_python/ebin
%% Calls/s of 10, 100 and 1,000 callers making py:call(math, sqrt, [16]),
%% medians of 5 runs, with reply_spin_us set to the argument (0: callers never
%% poll for their reply). Run from the repository root after `make build-hooks`:
%%   escript scripts/callers.escript 0; escript scripts/callers.escript 20
-mode(compile).
main([Spin]) ->
    application:load(erlang_python),
    ok = application:set_env(erlang_python, reply_spin_us, list_to_integer(Spin)),
    {ok, _} = application:ensure_all_started(erlang_python),
    [py:call(math, sqrt, [16]) || _ <- lists:seq(1, 2000)],
    R = [{C, round(median([tp(C, max(500, 100000 div C)) || _ <- lists:seq(1, 5)]))} || C <- [10, 100, 1000]],
    io:format("spin ~s ~p~n", [Spin, R]).
median(L) -> lists:nth((length(L) + 1) div 2, lists:sort(L)).
tp(C, Per) ->
    Parent = self(), Go = make_ref(),
    Call = fun() -> case py:call(math, sqrt, [16]) of {ok, 4.0} -> 1; {error, {overloaded, _, _}} -> 0 end end,
    Pids = [spawn_link(fun() -> receive Go -> ok end, Parent ! {done, self(), count(Per, Call, 0)} end) || _ <- lists:seq(1, C)],
    T0 = erlang:monotonic_time(microsecond),
    [P ! Go || P <- Pids],
    S = lists:sum([receive {done, P, K} -> K end || P <- Pids]),
    S / ((erlang:monotonic_time(microsecond) - T0) / 1.0e6).
count(0, _, N) -> N;
count(K, F, N) -> count(K - 1, F, N + F()).
