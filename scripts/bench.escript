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
    Par = parallel_rows(),
    Mem = memory_rows(),
    Header = io_lib:format("Python ~s, mode ~p, ~p executors, ~p schedulers, OTP ~s; medians of ~p runs~n",
                           [hd(string:split(Version, " ")), Mode, py:num_executors(),
                            erlang:system_info(schedulers), erlang:system_info(otp_release), ?RUNS]),
    Table = [Header, "\n| figure | median us per call |\n|---|---|\n",
             [io_lib:format("| ~s | ~.2f |~n", [Name, V]) || {Name, V} <- Rows],
             "\n| concurrent callers (py:call math.sqrt) | calls/s |\n|---|---|\n",
             [io_lib:format("| ~p | ~s |~n", [C, fmt_int(round(V))]) || {C, V} <- Tput],
             "\n| CPU-bound pure Python, 2 x burn() | value |\n|---|---|\n",
             [io_lib:format("| ~s | ~s |~n", [K, V]) || {K, V} <- Par],
             "\n| memory (beam.smp RSS) | MB |\n|---|---|\n",
             [io_lib:format("| ~s | ~.1f |~n", [K, V]) || {K, V} <- Mem]],
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
    {ok, _} = py_nif:submit(main, echo, x, Tag, undefined),
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

%% Two CPU-bound calls: one after the other on one context, then side by side with
%% py:parallel; and the same work in two native Python processes, for the ceiling.
-define(BURN, "def burn(n):\n    s = 0\n    for i in range(n):\n        s += i * i\n    return s\n").

parallel_rows() ->
    {ok, Ctxs} = py_context_router:start(#{contexts => 2}),
    [ok = py:exec(C, <<?BURN>>) || C <- Ctxs],
    %% calibrate to about 0.3 s per call
    {T0, _} = timer:tc(fun() -> py:call(hd(Ctxs), '__main__', burn, [1000000]) end),
    N = max(100000, round(1000000 * 300000 / T0)),
    [C1 | _] = Ctxs,
    Seq = median([element(1, timer:tc(fun() ->
                      {ok, _} = py:call(C1, '__main__', burn, [N]),
                      {ok, _} = py:call(C1, '__main__', burn, [N])
                  end)) || _ <- lists:seq(1, ?RUNS)]),
    Par = median([element(1, timer:tc(fun() ->
                      {ok, [{ok, _}, {ok, _}]} = py:parallel([{'__main__', burn, [N]}, {'__main__', burn, [N]}])
                  end)) || _ <- lists:seq(1, ?RUNS)]),
    {NSeq, NPar} = native(N),
    Ours = Seq / Par,
    Native = NSeq / NPar,
    [{"calls of ~0.3 s (n)", integer_to_list(N)},
     {"sequential on one context", io_lib:format("~.3f s", [Seq / 1.0e6])},
     {"py:parallel over 2 contexts", io_lib:format("~.3f s", [Par / 1.0e6])},
     {"speed-up, ours (sequential / parallel)", io_lib:format("~.2fx", [Ours])},
     {"speed-up, 2 native Python processes", io_lib:format("~.2fx", [Native])},
     {"ours as a fraction of native", io_lib:format("~.2f", [Ours / Native])}].

native(N) ->
    {ok, PyBin} = file:read_file("erlang/priv/python.txt"),
    Py = string:trim(binary_to_list(PyBin)),
    Script = ?BURN ++ "import time\nt0 = time.time()\nburn(" ++ integer_to_list(N) ++ ")\nprint(t0, time.time())\n",
    File = "/tmp/ep_bench_burn.py",
    ok = file:write_file(File, Script),
    Run = fun() ->
              [A, B] = string:lexemes(os:cmd(Py ++ " " ++ File), " \n"),
              {list_to_float(A), list_to_float(B)}
          end,
    Seqs = [begin {A1, B1} = Run(), {A2, B2} = Run(), (B1 - A1) + (B2 - A2) end || _ <- lists:seq(1, ?RUNS)],
    Pars = [begin
                Self = self(),
                [spawn(fun() -> Self ! {native, Run()} end) || _ <- [1, 2]],
                Ts = [receive {native, T} -> T end || _ <- [1, 2]],
                lists:max([B || {_, B} <- Ts]) - lists:min([A || {A, _} <- Ts])
            end || _ <- lists:seq(1, ?RUNS)],
    {median(Seqs), median(Pars)}.

memory_rows() ->
    R0 = rss_mb(),
    Rows = [begin
                {ok, _} = py_context_router:start(#{contexts => N}),
                %% touch every context once
                [{ok, 2} = py:eval(C, <<"1 + 1">>) || C <- py_context_router:contexts()],
                {io_lib:format("~p contexts", [N]), rss_mb()}
            end || N <- [1, 2, 8, 32, 64]],
    {ok, _} = py_context_router:start(#{contexts => 2}),
    [{"at start of the benchmark (default contexts)", R0} | Rows].

rss_mb() ->
    {ok, S} = file:read_file("/proc/" ++ os:getpid() ++ "/status"),
    [Line] = [L || L <- string:split(S, "\n", all), string:prefix(L, "VmRSS:") =/= nomatch],
    [_, Kb, _] = string:lexemes(Line, " \t"),
    binary_to_integer(Kb) / 1024.

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
