#!/usr/bin/env escript
%%! -pa erlang/_build/default/lib/erlang_python/ebin +sbwt none
%% The benchmark: latency and throughput of py:call / py:eval, each next to floors
%% measured in the same run. Medians of 5 runs. Prints a Markdown table and, with
%% the argument "write", replaces the results section of docs/benchmarks.md.
-mode(compile).

-define(RUNS, 5).

main(Args) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    {ok, Version} = py:version(),
    Mode = py:execution_mode(),
    N = 20000,
    %% warm up
    [py:call(math, sqrt, [16]) || _ <- lists:seq(1, 2000)],
    Rows =
        [{"Erlang ping-pong between two processes (floor)", us(fun() -> pingpong(N) end, N)},
         {"no-op NIF call (floor)", us(fun() -> loop(N, fun() -> py_nif:noop() end) end, N)},
         {"NIF -> pinned actor -> enif_send echo (floor)", us(fun() -> loop(N, fun echo/0) end, N)},
         {"math.sqrt(16) in-process, inside Python (floor)", inproc_us()},
         {"py:call(math, sqrt, [16])", us(fun() -> loop(N, fun() -> {ok, 4.0} = py:call(math, sqrt, [16]) end) end, N)},
         {"py:eval(<<\"1+1\">>)", us(fun() -> loop(N, fun() -> {ok, 2} = py:eval(<<"1+1">>) end) end, N)}],
    Tput = [{C, throughput(C, max(200, 40000 div C))} || C <- [1, 10, 50, 100]],
    Header = io_lib:format("Python ~s, mode ~p, ~p executors, ~p schedulers, OTP ~s; medians of ~p runs~n",
                           [hd(string:split(Version, " ")), Mode, py:num_executors(),
                            erlang:system_info(schedulers), erlang:system_info(otp_release), ?RUNS]),
    Table = [Header, "\n| figure | median µs per call |\n|---|---|\n",
             [io_lib:format("| ~s | ~.2f |~n", [Name, V]) || {Name, V} <- Rows],
             "\n| concurrent callers (py:call math.sqrt) | calls/s |\n|---|---|\n",
             [io_lib:format("| ~p | ~s |~n", [C, fmt_int(round(V))]) || {C, V} <- Tput]],
    io:put_chars(Table),
    case Args of
        ["write"] -> write_doc(Mode, Table);
        _ -> ok
    end,
    ok = application:stop(erlang_python).

loop(0, _) -> ok;
loop(N, F) -> F(), loop(N - 1, F).

echo() ->
    Tag = make_ref(),
    {ok, _} = py_nif:submit(echo, x, Tag),
    receive {py_echo, Tag, x} -> ok end.

pingpong(N) ->
    P = spawn(fun Loop() -> receive {From, M} -> From ! M, Loop(); stop -> ok end end),
    loop(N, fun() -> P ! {self(), ping}, receive ping -> ok end end),
    P ! stop.

%% Median over runs of microseconds per operation.
us(F, N) ->
    median([begin {T, _} = timer:tc(F), T / N end || _ <- lists:seq(1, ?RUNS)]).

inproc_us() ->
    Code = <<"__import__('timeit').timeit('sqrt(16)', setup='from math import sqrt', number=200000) / 200000 * 1e6">>,
    median([begin {ok, V} = py:eval(Code), V end || _ <- lists:seq(1, ?RUNS)]).

throughput(C, PerCaller) ->
    median([one_throughput(C, PerCaller) || _ <- lists:seq(1, ?RUNS)]).

one_throughput(C, PerCaller) ->
    Parent = self(),
    Go = make_ref(),
    Pids = [spawn_link(fun() ->
                receive Go -> ok end,
                loop(PerCaller, fun() -> {ok, 4.0} = py:call(math, sqrt, [16]) end),
                Parent ! {done, self()}
            end) || _ <- lists:seq(1, C)],
    T0 = erlang:monotonic_time(microsecond),
    [P ! Go || P <- Pids],
    [receive {done, P} -> ok end || P <- Pids],
    T = erlang:monotonic_time(microsecond) - T0,
    C * PerCaller / (T / 1.0e6).

median(L) -> lists:nth((length(L) + 1) div 2, lists:sort(L)).

fmt_int(N) when N >= 1000 -> fmt_int(N div 1000) ++ "," ++ io_lib:format("~3..0B", [N rem 1000]);
fmt_int(N) -> integer_to_list(N).

write_doc(Mode, Table) ->
    File = "docs/benchmarks.md",
    Begin = io_lib:format("<!-- bench:~p:begin -->", [Mode]),
    End = io_lib:format("<!-- bench:~p:end -->", [Mode]),
    Block = [Begin, "\n", Table, End],
    Old = case file:read_file(File) of {ok, B} -> binary_to_list(B); _ -> "" end,
    New = case {string:find(Old, lists:flatten(Begin)), string:find(Old, lists:flatten(End))} of
              {nomatch, _} -> [Old, "\n", Block, "\n"];
              {_, nomatch} -> [Old, "\n", Block, "\n"];
              {_, AfterEnd} ->
                  Before = string:slice(Old, 0, length(Old) - length(string:find(Old, lists:flatten(Begin)))),
                  [Before, Block, string:slice(AfterEnd, length(lists:flatten(End)))]
          end,
    ok = file:write_file(File, New),
    io:format("~nwrote ~s~n", [File]).
