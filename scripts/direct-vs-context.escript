#!/usr/bin/env escript
%%! -pa erlang/_build/default/lib/erlang_python/ebin
%% Free-threaded builds only: a trivial call run on a dirty CPU scheduler with no
%% hand-off (py_nif:direct_call/1) against the same call through a context
%% actor's thread (py:call/3), alternating, five rounds of 20,000 calls each.
%%   PYTHON=.../python3.13t make && escript scripts/direct-vs-context.escript
%%   ERL_FLAGS="+sbwt none" escript scripts/direct-vs-context.escript
-mode(compile).

main(_) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    P = {<<"math">>, <<"sqrt">>, [16], #{}},
    case py_nif:direct_call(P) of
        {ok, 4.0} -> ok;
        Other -> io:format("direct calls need a free-threaded build: ~p~n", [Other]), halt(1)
    end,
    N = 20000,
    Rows = [begin
                {T1, _} = timer:tc(fun() -> loop(N, fun() -> {ok, 4.0} = py_nif:direct_call(P) end) end),
                {T2, _} = timer:tc(fun() -> loop(N, fun() -> {ok, 4.0} = py:call(math, sqrt, [16]) end) end),
                {T1 / N, T2 / N}
            end || _ <- lists:seq(1, 5)],
    [io:format("dirty scheduler ~.2f us, context thread ~.2f us~n", [D, C]) || {D, C} <- Rows],
    {Ds, Cs} = lists:unzip(Rows),
    io:format("medians: dirty scheduler ~.2f us, context thread ~.2f us~n", [median(Ds), median(Cs)]).

loop(0, _) -> ok;
loop(N, F) -> F(), loop(N - 1, F).

median(L) -> lists:nth((length(L) + 1) div 2, lists:sort(L)).
