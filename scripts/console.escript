#!/usr/bin/env escript
%%! -pa erlang/_build/default/lib/erlang_python/ebin +sbwt none
%% Helper of scripts/console-check, run against whichever NIF build is in priv/:
%%   latency            prints "latency <py:call us> <enif_send echo us>", medians of 5
%%   serve Addr Secs    serves tokio-console on Addr while two callers make calls
-mode(compile).

main(["latency"]) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    N = 20000,
    [py:call(math, sqrt, [16]) || _ <- lists:seq(1, 2000)],
    Call = us(fun() -> loop(N, fun() -> {ok, 4.0} = py:call(math, sqrt, [16]) end) end, N),
    Echo = us(fun() -> loop(N, fun echo/0) end, N),
    io:format("latency ~.2f ~.2f~n", [Call, Echo]);
main(["serve", Addr, Secs]) ->
    ok = application:set_env(erlang_python, console_addr, Addr),
    {ok, _} = application:ensure_all_started(erlang_python),
    {ok, V} = py:version(),
    io:format("serving tokio-console on ~s, Python ~s, mode ~s~n", [Addr, hd(string:split(V, " ")), maps:get(mode, py:info())]),
    Caller = fun Loop(I) -> {ok, _} = py:call(math, sqrt, [I]), timer:sleep(2), Loop(I + 1) end,
    [spawn(fun() -> py_context_router:bind_context(py:context(C)), Caller(1) end)
     || C <- lists:seq(1, py_context_router:num_contexts())],
    spawn(fun() -> py_context_router:bind_context(py:context(main)), Caller(1) end),
    timer:sleep(list_to_integer(Secs) * 1000),
    halt(0).

loop(0, _) -> ok;
loop(N, F) -> F(), loop(N - 1, F).

echo() ->
    Tag = make_ref(),
    {ok, _} = py_nif:submit(main, echo, x, Tag, undefined),
    receive {py_echo, Tag, x} -> ok end.

us(F, N) ->
    median([begin {T, _} = timer:tc(F), T / N end || _ <- lists:seq(1, 5)]).

median(L) -> lists:nth((length(L) + 1) div 2, lists:sort(L)).
