#!/usr/bin/env escript
%%! -pa erlang/_build/default/lib/erlang_python/ebin
%% The benchmark: latency and throughput of py:call / py:eval, each next to floors
%% measured in the same run. It runs with the VM's default scheduler flags
%% (`make bench-flags` measures the others: `+sbwt none`, which earlier runs
%% used, makes a callback round trip four times slower). Medians of 5 runs. Prints a Markdown table and, with
%% the argument "write", replaces the results section of docs/benchmarks.md.
%% Two more modes serve scripts/console-check:
%%   latency            prints "latency <py:call us> <enif_send echo us>"
%%   serve Addr Secs    serves tokio-console on Addr while callers make calls
%%   async              only the rows of calls that do not wait (make bench-async)
%%   isolation          only the rows of process-isolated contexts (make bench-isolation)
%%   probe call|echo    1,000,000 of them back to back, for scripts/stage-probe
%%   split              py:call, the same request without py.erl, and the echo
%%   binaries           large binaries each way, next to copying them in Erlang
%%                      (docs/benchmarks.md, "Large binaries")
-mode(compile).

-define(RUNS, 5).

main(["latency"]) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    N = 20000,
    [py:call(math, sqrt, [16]) || _ <- lists:seq(1, 2000)],
    Call = us(fun() -> loop(N, fun() -> {ok, 4.0} = py:call(math, sqrt, [16]) end) end, N),
    Echo = us(fun() -> loop(N, fun echo/0) end, N),
    io:format("latency ~.2f ~.2f~n", [Call, Echo]);
main(["reach"]) ->
    %% only the rows of refs, channels and thread callbacks (make bench-reach)
    {ok, _} = application:ensure_all_started(erlang_python),
    [py:call(math, sqrt, [16]) || _ <- lists:seq(1, 2000)],
    io:format("mode ~p~n| refs, channels, callbacks from threads | value | next to |~n|---|---|---|~n", [py:execution_mode()]),
    [io:format("| ~s | ~s | ~s |~n", [K, V, Next]) || {K, V, Next} <- reach_rows()],
    ok = application:stop(erlang_python);
main(["async"]) ->
    %% only the rows of calls that do not wait (make bench-async)
    {ok, _} = application:ensure_all_started(erlang_python),
    [py:call(math, sqrt, [16]) || _ <- lists:seq(1, 2000)],
    io:format("mode ~p~n| calls that do not wait | value | next to |~n|---|---|---|~n", [py:execution_mode()]),
    [io:format("| ~s | ~s | ~s |~n", [K, V, Next]) || {K, V, Next} <- async_rows()],
    ok = application:stop(erlang_python);
main(["split"]) ->
    %% py:call next to the same request made by hand (no py.erl around it) and
    %% the echo: how much of a call is py.erl's (docs/benchmarks.md, "Ninth
    %% look"). Seven runs of 20,000 each, one line per run.
    {ok, _} = application:ensure_all_started(erlang_python),
    [py:call(math, sqrt, [16]) || _ <- lists:seq(1, 2000)],
    N = 20000,
    [io:format("split py:call ~.3f by-hand ~.3f echo ~.3f~n",
               [us(fun() -> loop(N, fun() -> {ok, 4.0} = py:call(math, sqrt, [16]) end) end, N),
                us(fun() -> loop(N, fun by_hand/0) end, N),
                us(fun() -> loop(N, fun echo/0) end, N)])
     || _ <- lists:seq(1, 7)],
    ok = application:stop(erlang_python);
main(["binaries"]) ->
    %% 1, 4 and 16 MB each way, as bytes and as text, next to one copy of the
    %% binary made in Erlang; medians of 21, ms. Started with ERL_FLAGS="
    %% -erlang_python malloc_thresholds keep", glibc keeps the thresholds the
    %% VM gave it.
    {ok, _} = application:ensure_all_started(erlang_python),
    Ctx = py:context(1),
    ok = py:exec(Ctx, <<"def mk(n):\n    return b'x' * n\ndef mks(n):\n    return 'x' * n\n">>),
    Ms = fun(F) -> F(), median([element(1, timer:tc(F)) || _ <- lists:seq(1, 21)]) / 1000 end,
    Rss0 = rss_mb(),
    io:format("malloc_thresholds ~p~n| MB | to Python, bytes | to Python, text | from Python, bytes | from Python, text | binary:copy (floor) |~n"
              "|---|---|---|---|---|---|~n", [application:get_env(erlang_python, malloc_thresholds, default)]),
    [begin
         N = Size bsl 20,
         B = binary:copy(<<"y">>, N),
         io:format("| ~p | ~.3f | ~.3f | ~.3f | ~.3f | ~.3f |~n",
                   [Size,
                    Ms(fun() -> {ok, N} = py:call(Ctx, builtins, len, [{'$bytes', B}]) end),
                    Ms(fun() -> {ok, N} = py:call(Ctx, builtins, len, [B]) end),
                    Ms(fun() -> {ok, <<_:N/binary>>} = py:call(Ctx, '__main__', mk, [N]) end),
                    Ms(fun() -> {ok, <<_:N/binary>>} = py:call(Ctx, '__main__', mks, [N]) end),
                    Ms(fun() -> <<_:N/binary>> = binary:copy(B) end)])
     end || Size <- [1, 4, 16]],
    %% what stays with malloc afterwards (freed, not given back)
    erlang:garbage_collect(),
    io:format("RSS ~.0f MB before, ~.0f MB after~n", [Rss0, rss_mb()]),
    ok = application:stop(erlang_python);
main(["steady"]) ->
    %% one line for scripts/vm-flags: the steadiness figures under the VM
    %% flags this run was started with (ERL_ZFLAGS)
    {ok, _} = application:ensure_all_started(erlang_python),
    [py:call(math, sqrt, [16]) || _ <- lists:seq(1, 2000)],
    [{_, _, {CMin, CMed, CMax}}, {_, _, {EMin, EMed, EMax}}, _, _] = steadiness_rows(20000),
    Ctx1 = py:context(1),
    ok = py:register_function(bench_echo, fun([X]) -> X end),
    ok = py:exec(Ctx1, <<"import erlang\ndef cb(n):\n    for i in range(n):\n        erlang.bench_echo(i)\n">>),
    Cb = us(fun() -> {ok, none} = py:call(Ctx1, '__main__', cb, [2000]) end, 2000),
    io:format("steady ~.3f ~.3f ~.3f ~.3f ~.3f ~.3f ~.3f~n", [CMin, CMed, CMax, EMin, EMed, EMax, Cb]),
    ok = application:stop(erlang_python);
main(["probe", What]) ->
    %% scripts/stage-probe: 1,000,000 back-to-back calls (or echoes) for a
    %% build with the stage-probe feature, which prints its cycle counts
    {ok, _} = application:ensure_all_started(erlang_python),
    F = case What of
            "call" -> fun() -> {ok, 4.0} = py:call(math, sqrt, [16]) end;
            "echo" -> fun echo/0
        end,
    loop(1000000, F),
    timer:sleep(200),
    ok = application:stop(erlang_python);
main(["isolation"]) ->
    %% only the rows of process-isolated contexts (make bench-isolation)
    {ok, _} = application:ensure_all_started(erlang_python),
    [py:call(math, sqrt, [16]) || _ <- lists:seq(1, 2000)],
    io:format("mode ~p~n| isolation => process | in-process pool | isolated pool | ratio |~n|---|---|---|---|~n",
              [py:execution_mode()]),
    [io:format("| ~s | ~s | ~s | ~s |~n", Row) || Row <- isolation_rows()],
    ok = application:stop(erlang_python);
main(["serve", Addr, Secs]) ->
    ok = application:set_env(erlang_python, console_addr, Addr),
    {ok, _} = application:ensure_all_started(erlang_python),
    {ok, V} = py:version(),
    io:format("serving tokio-console on ~s, Python ~s, mode ~s~n", [Addr, hd(string:split(V, " ")), maps:get(mode, py:info())]),
    %% one caller bound to each context and one on the main interpreter
    Caller = fun Loop(I) -> {ok, _} = py:call(math, sqrt, [I]), timer:sleep(2), Loop(I + 1) end,
    [spawn(fun() -> py_context_router:bind_context(C), Caller(1) end)
     || C <- [py:context(main) | [py:context(I) || I <- lists:seq(1, py_context_router:num_contexts())]]],
    timer:sleep(list_to_integer(Secs) * 1000),
    halt(0);
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
    Direct = case Mode of
                 %% Issue 4's question: would calls be faster run on dirty
                 %% schedulers (no hand-off) than on the context threads?
                 free_threaded ->
                     Payload = {<<"math">>, <<"sqrt">>, [16], #{}},
                     [{"same call run on a dirty CPU scheduler, no hand-off (free_threaded only)",
                       us(fun() -> loop(N, fun() -> {ok, 4.0} = py_nif:direct_call(Payload) end) end, N)}];
                 _ -> []
             end,
    Steady = progress("steadiness over five runs", fun() -> steadiness_rows(N) end)
        ++ progress("the same in a VM started with +IOs false", fun ios_false_rows/0),
    Extra = Direct ++ progress("state and callbacks", fun() -> extra_rows(N) end),
    Tput = progress("throughput", fun() -> [{C, throughput(C, max(500, 100000 div C))} || C <- [1, 2, 10, 50, 100, 1000]] end),
    Conv = progress("conversions", fun conversion_rows/0),
    Async = progress("calls that do not wait", fun async_rows/0),
    Reach = progress("refs, channels, callbacks from threads", fun reach_rows/0),
    Growth = progress("RSS over 1,000,000 calls", fun rss_growth/0),
    Par = progress("parallel", fun parallel_rows/0),
    Mem = progress("memory", fun memory_rows/0),
    Header = io_lib:format("Python ~s, mode ~p, ~p executors, ~p schedulers, OTP ~s; medians of ~p runs~n",
                           [hd(string:split(Version, " ")), Mode, py:num_executors(),
                            erlang:system_info(schedulers), erlang:system_info(otp_release), ?RUNS]),
    Table = [Header, "\n| figure | median us per call |\n|---|---|\n",
             [io_lib:format("| ~s | ~.2f |~n", [Name, V]) || {Name, V} <- Rows ++ Extra],
             "\n| five runs, one caller back to back | min | median | max | max/min |\n|---|---|---|---|---|\n",
             [io_lib:format("| ~s | ~s | ~s | ~s | ~.2f |~n", [K, Fmt(Min), Fmt(Med), Fmt(Max), Max / Min])
              || {K, Fmt, {Min, Med, Max}} <- Steady],
             "\n| conversion (py:call(builtins, id, [X]) round trip) | median | per unit |\n|---|---|---|\n",
             [io_lib:format("| ~s | ~.1f us | ~s |~n", [K, V, U]) || {K, V, U} <- Conv],
             "\n| concurrent callers (py:call math.sqrt, default semaphore) | calls/s | floor: enif_send echo, same callers |\n|---|---|---|\n",
             [io_lib:format("| ~p | ~s | ~s |~n", [C, fmt_int(round(V)), fmt_int(round(E))]) || {C, {V, E}} <- Tput],
             "\n| calls that do not wait | value | next to |\n|---|---|---|\n",
             [io_lib:format("| ~s | ~s | ~s |~n", [K, V, Next]) || {K, V, Next} <- Async],
             "\n| refs, channels, callbacks from threads | value | next to |\n|---|---|---|\n",
             [io_lib:format("| ~s | ~s | ~s |~n", [K, V, Next]) || {K, V, Next} <- Reach],
             "\n| CPU-bound pure Python, 2 x burn() | value |\n|---|---|\n",
             [io_lib:format("| ~s | ~s |~n", [K, V]) || {K, V} <- Par],
             "\n| memory (beam.smp RSS) | MB |\n|---|---|\n",
             [io_lib:format("| ~s | ~.1f |~n", [K, V]) || {K, V} <- Mem ++ Growth]],
    io:put_chars(Table),
    case Args of
        ["write"] -> write_doc(Mode, Table);
        _ -> ok
    end,
    ok = application:stop(erlang_python).

%% Issue 19's figures: for five runs in this invocation, one caller making calls
%% back to back, as calls/s and as latency, next to the enif_send echo floor of
%% the same runs; min, median, max and the spread.
steadiness_rows(N) ->
    Runs = [begin
                {TCall, _} = timer:tc(fun() -> loop(N, fun() -> {ok, 4.0} = py:call(math, sqrt, [16]) end) end),
                {TEcho, _} = timer:tc(fun() -> loop(N, fun echo/0) end),
                {TCall / N, TEcho / N}
            end || _ <- lists:seq(1, ?RUNS)],
    Stats = fun(L) -> S = lists:sort(L), {hd(S), median(S), lists:last(S)} end,
    {CMin, CMed, CMax} = Stats([C || {C, _} <- Runs]),
    {EMin, EMed, EMax} = Stats([E || {_, E} <- Runs]),
    Us = fun(V) -> io_lib:format("~.2f us", [V]) end,
    PerS = fun(V) -> fmt_int(round(V)) ++ "/s" end,
    [{"py:call(math, sqrt, [16]) latency", Us, {CMin, CMed, CMax}},
     {"enif_send echo latency (floor)", Us, {EMin, EMed, EMax}},
     {"py:call, calls/s", PerS, {1.0e6 / CMax, 1.0e6 / CMed, 1.0e6 / CMin}},
     {"enif_send echo, calls/s (floor)", PerS, {1.0e6 / EMax, 1.0e6 / EMed, 1.0e6 / EMin}}].

%% The steadiness rows again, from a VM started with `+IOs false` (the flag
%% docs/benchmarks.md recommends to latency-sensitive nodes on few cores: no
%% scheduler then sleeps in the poll set while a call is served). Nothing if
%% that VM fails.
ios_false_rows() ->
    Out = os:cmd("ERL_ZFLAGS='+IOs false' escript scripts/bench.escript steady 2>/dev/null"),
    case [L || L <- string:split(Out, "\n", all), string:prefix(L, "steady ") =/= nomatch] of
        [Line | _] ->
            [CMin, CMed, CMax, EMin, EMed, EMax | _] = [list_to_float(F) || F <- tl(string:lexemes(Line, " "))],
            Us = fun(V) -> io_lib:format("~.2f us", [V]) end,
            PerS = fun(V) -> fmt_int(round(V)) ++ "/s" end,
            [{"with +IOs false: py:call latency", Us, {CMin, CMed, CMax}},
             {"with +IOs false: echo latency (floor)", Us, {EMin, EMed, EMax}},
             {"with +IOs false: py:call, calls/s", PerS, {1.0e6 / CMax, 1.0e6 / CMed, 1.0e6 / CMin}},
             {"with +IOs false: echo, calls/s (floor)", PerS, {1.0e6 / EMax, 1.0e6 / EMed, 1.0e6 / EMin}}];
        [] ->
            []
    end.

progress(What, F) ->
    io:format(standard_error, "bench: ~s...~n", [What]),
    F().

loop(0, _) -> ok;
loop(N, F) -> F(), loop(N - 1, F).

echo() ->
    1 = echo_once(),
    ok.

%% One request through the pinned actor and back, no Python: 1 if served, 0 if
%% refused as overloaded.
echo_once() ->
    Tag = make_ref(),
    case py_nif:submit(main, echo, x, Tag, undefined) of
        %% the handle is kept until the reply is in: collected earlier, it would
        %% cancel the echo (and this receive would wait forever)
        {ok, H} -> echo_reply(Tag), keep(H), 1;
        {queued, H} ->
            case py_nif:withdraw(H) of
                true -> 0;
                false -> receive {py_echo, Tag, x} -> 1 end
            end
    end.

%% Waits for an echo's reply as py:call waits for a promised call's
%% (py:spin_reply/1, the same steps and bounds): polls it for up to 20 us
%% while the mailbox is empty and no run queue has work, then blocks. So
%% the floor and the call wait alike.
echo_reply(Tag) ->
    case erlang:process_info(self(), message_queue_len) of
        {message_queue_len, 0} ->
            Ns = persistent_term:get({erlang_python, reply_spin_ns}, 0),
            echo_poll(Tag, erlang:monotonic_time(nanosecond) + Ns, 0);
        _ -> receive {py_echo, Tag, x} -> ok end
    end.

echo_poll(Tag, Until, 0) ->
    case erlang:statistics(total_run_queue_lengths) =:= 0
         andalso erlang:process_info(self(), message_queue_len) =:= {message_queue_len, 0}
         andalso erlang:monotonic_time(nanosecond) < Until of
        true -> echo_poll(Tag, Until, 16);
        false -> receive {py_echo, Tag, x} -> ok end
    end;
echo_poll(Tag, Until, N) ->
    receive
        {py_echo, Tag, x} -> ok
    after 0 ->
        echo_poll(Tag, Until, N - 1)
    end.

%% py:call(math, sqrt, [16]) without py.erl: the request it makes, waited for
%% as echo_reply/1 waits (without the clock reads).
by_hand() ->
    Tag = erlang:unique_integer(),
    case py_nif:submit(auto, call, {math, sqrt, [16], #{}}, Tag, undefined) of
        {promised, H} -> {ok, 4.0} = by_hand_poll(Tag, 0), keep(H);
        {ok, H} -> receive {py_reply, Tag, {ok, 4.0}} -> keep(H) end
    end.

by_hand_poll(Tag, 0) ->
    case erlang:statistics(total_run_queue_lengths) =:= 0
         andalso erlang:process_info(self(), message_queue_len) =:= {message_queue_len, 0} of
        true -> by_hand_poll(Tag, 16);
        false -> receive {py_reply, Tag, R} -> R end
    end;
by_hand_poll(Tag, N) ->
    receive {py_reply, Tag, R} -> R after 0 -> by_hand_poll(Tag, N - 1) end.

%% Uses its argument, so that it is live until here.
keep(H) -> erlang:phash2(H), ok.

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
    Call = fun() -> case py:call(math, sqrt, [16]) of
                        {ok, 4.0} -> 1;
                        {error, {overloaded, _, _}} -> 0
                    end end,
    {median([one_throughput(C, PerCaller, Call) || _ <- lists:seq(1, ?RUNS)]),
     median([one_throughput(C, PerCaller, fun echo_once/0) || _ <- lists:seq(1, ?RUNS)])}.

%% Calls per second actually served by C callers making PerCaller calls each:
%% with many callers and the default limit some calls are refused as overloaded
%% (the semaphore working); those are not counted.
one_throughput(C, PerCaller, F) ->
    Parent = self(),
    Go = make_ref(),
    Pids = [spawn_link(fun() ->
                receive Go -> ok end,
                Parent ! {done, self(), count(PerCaller, F, 0)}
            end) || _ <- lists:seq(1, C)],
    T0 = erlang:monotonic_time(microsecond),
    [P ! Go || P <- Pids],
    Served = lists:sum([receive {done, P, K} -> K end || P <- Pids]),
    T = erlang:monotonic_time(microsecond) - T0,
    Served / (T / 1.0e6).

%% The same work on a pool of 2 in-process contexts and on a pool of 2
%% process-isolated ones: trivial call latency, 100 callers, a 1 MB argument.
isolation_rows() ->
    {ok, [In | _]} = py_context_router:start_pool(bench_in, #{contexts => 2}),
    {ok, [Iso | _]} = py_context_router:start_pool(bench_iso, #{contexts => 2, isolation => process}),
    N = 5000,
    Lat = fun(Ctx) -> us(fun() -> loop(N, fun() -> {ok, 3} = py:call(Ctx, operator, add, [1, 2]) end) end, N) end,
    Many = fun(Pool) ->
               Call = fun() -> case py:call(py:pool(Pool), operator, add, [1, 2]) of
                                   {ok, 3} -> 1;
                                   {error, {overloaded, _, _}} -> 0
                               end end,
               median([one_throughput(100, 200, Call) || _ <- lists:seq(1, ?RUNS)])
           end,
    Mb = binary:copy(<<"x">>, 1024 * 1024),
    Big = fun(Ctx) -> us(fun() -> loop(50, fun() -> {ok, 1048576} = py:call(Ctx, builtins, len, [Mb]) end) end, 50) end,
    [LIn, LIso] = [Lat(C) || C <- [In, Iso]],
    [TIn, TIso] = [Many(P) || P <- [bench_in, bench_iso]],
    [BIn, BIso] = [Big(C) || C <- [In, Iso]],
    ok = py_context_router:stop_pool(bench_in),
    ok = py_context_router:stop_pool(bench_iso),
    [["py:call latency (operator.add), us", f1(LIn), f1(LIso), io_lib:format("~.1fx", [LIso / LIn])],
     ["100 callers on the pool, calls/s", fmt_int(round(TIn)), fmt_int(round(TIso)), io_lib:format("~.2fx", [TIso / TIn])],
     ["len(1 MB binary) latency, us", f1(BIn), f1(BIso), io_lib:format("~.1fx", [BIso / BIn])],
     ["the 1 MB crossing the pipes (difference), us", "", f1(BIso - BIn), ""]].

f1(X) -> io_lib:format("~.1f", [X]).

count(0, _, K) -> K;
count(N, F, K) -> count(N - 1, F, K + F()).

extra_rows(N) ->
    {ok, Ctx1} = {ok, py:context(1)},
    ok = py:exec(Ctx1, <<"from erlang import state_incr\ndef bump(n):\n    for _ in range(n):\n        state_incr('bench')\n">>),
    ok = py:register_function(bench_echo, fun([X]) -> X end),
    ok = py:exec(Ctx1, <<"import erlang\ndef cb(n):\n    for i in range(n):\n        erlang.bench_echo(i)\n">>),
    K = 10000,
    [{"state_incr from Erlang (py:state_incr/1)", us(fun() -> loop(N, fun() -> {ok, _} = py:state_incr(bench) end) end, N)},
     {"state_incr from Python, per increment", us(fun() -> {ok, none} = py:call(Ctx1, '__main__', bump, [K]) end, K)},
     {"floor: the same Python loop with a dict increment, in-process",
      median([begin {ok, V} = py:eval(Ctx1, <<"__import__('timeit').timeit('d[\"k\"] = d.get(\"k\", 0) + 1', setup='d = {}', number=100000) / 100000 * 1e6">>), V end
              || _ <- lists:seq(1, ?RUNS)])},
     {"callback round trip Python -> Erlang -> Python, per call", us(fun() -> {ok, none} = py:call(Ctx1, '__main__', cb, [2000]) end, 2000)}].

%% Casts against calls of the same function (erlang.state_incr, so completion is
%% observable), per second from start to the last one done, for 1 and 100
%% callers; spawn_call+await against call latency; a stream against a list.
async_rows() ->
    K = 20000,
    Rate = fun(Callers, F, Key) ->
               median([begin
                           ok = py:state_store(Key, 0),
                           PerCaller = K div Callers,
                           T0 = erlang:monotonic_time(microsecond),
                           Parent = self(),
                           Pids = [spawn_link(fun() -> loop(PerCaller, fun() -> F(Key) end), Parent ! {done, self()} end)
                                   || _ <- lists:seq(1, Callers)],
                           [receive {done, P} -> ok end || P <- Pids],
                           wait_count(Key, PerCaller * Callers),
                           PerCaller * Callers / ((erlang:monotonic_time(microsecond) - T0) / 1.0e6)
                       end || _ <- lists:seq(1, ?RUNS)])
           end,
    application:set_env(erlang_python, overload_wait, 60000),
    Cast = fun(Key) -> ok = py:cast(erlang, state_incr, [Key]) end,
    Call = fun(Key) -> {ok, _} = py:call(erlang, state_incr, [Key]) end,
    [C1, L1, C100, L100] = [Rate(N, F, Key) || {N, F, Key} <- [{1, Cast, <<"bc1">>}, {1, Call, <<"bl1">>},
                                                                {100, Cast, <<"bc100">>}, {100, Call, <<"bl100">>}]],
    application:set_env(erlang_python, overload_wait, 1000),
    N = 20000,
    Spawn = us(fun() -> loop(N, fun() -> {ok, 4.0} = py:await(py:spawn_call(math, sqrt, [16])) end) end, N),
    CallUs = us(fun() -> loop(N, fun() -> {ok, 4.0} = py:call(math, sqrt, [16]) end) end, N),
    Items = 100000,
    StreamUs = median([element(1, timer:tc(fun() -> {ok, _} = py:stream_eval(<<"range(100000)">>) end)) || _ <- lists:seq(1, ?RUNS)]),
    ListUs = median([element(1, timer:tc(fun() -> {ok, _} = py:eval(<<"list(range(100000))">>) end)) || _ <- lists:seq(1, ?RUNS)]),
    Ratio = fun(A, B) -> io_lib:format("~.2fx", [A / B]) end,
    ok = py:exec(<<"import asyncio\nasync def one():\n    return 1\ndef one_sync():\n    return 1\n"
                   "async def long_nap():\n    await asyncio.sleep(60)\n">>),
    AsyncUs = us(fun() -> loop(N, fun() -> {ok, 1} = py:async_await(py:async_call('__main__', one, [])) end) end, N),
    SpawnSyncUs = us(fun() -> loop(N, fun() -> {ok, 1} = py:await(py:spawn_call('__main__', one_sync, [])) end) end, N),
    CallSyncUs = us(fun() -> loop(N, fun() -> {ok, 1} = py:call('__main__', one_sync, []) end) end, N),
    %% idle: the whole node's CPU over 2 s, with no task, then with a task
    %% waiting on a 60 s timer (its loop's driver sleeps in poll until then);
    %% after a burst the actor runtime settles for a few seconds first
    timer:sleep(5000),
    IdleNone = cpu_ms(2000),
    Pending = py:async_call('__main__', long_nap, []),
    timer:sleep(500),
    IdleLoop = cpu_ms(2000),
    _ = py:async_await(Pending, 0),
    [{"py:cast, 1 caller, casts/s (to the last one done)", fmt_int(round(C1)),
      io_lib:format("py:call of the same: ~s/s (cast/call ~s)", [fmt_int(round(L1)), Ratio(C1, L1)])},
     {"py:cast, 100 callers, casts/s", fmt_int(round(C100)),
      io_lib:format("py:call of the same: ~s/s (cast/call ~s)", [fmt_int(round(L100)), Ratio(C100, L100)])},
     {"py:spawn_call + py:await, us", io_lib:format("~.2f", [Spawn]),
      io_lib:format("py:call: ~.2f us", [CallUs])},
     {"py:async_call + py:async_await of a coroutine returning 1, us", io_lib:format("~.2f", [AsyncUs]),
      io_lib:format("py:spawn_call + py:await of a function returning 1: ~.2f us; py:call: ~.2f us", [SpawnSyncUs, CallSyncUs])},
     {"node CPU over 2 s idle, a task waiting on a 60 s timer, ms", integer_to_list(IdleLoop),
      io_lib:format("the same with no task: ~p ms", [IdleNone])},
     {"py:stream_eval of range(100000), items/s", fmt_int(round(Items / (StreamUs / 1.0e6))),
      io_lib:format("py:eval of list(range(100000)): ~s items/s", [fmt_int(round(Items / (ListUs / 1.0e6)))])}].

%% Issue 14's figures, each next to what it is compared with in the same run:
%% a method call on a ref against a plain call; messages into Python through a
%% channel against messages out of Python with erlang.send; an erlang.call from
%% a Python thread against one from the thread serving the request.
reach_rows() ->
    Ctx = py:context(1),
    N = 20000,
    ok = py:exec(Ctx, <<"import erlang, threading, time\n"
                        "class Box:\n"
                        "    def get(self):\n"
                        "        return 1\n"
                        "def get():\n"
                        "    return 1\n"
                        "def consume(ch):\n"
                        "    n = 0\n"
                        "    for _ in ch:\n"
                        "        n += 1\n"
                        "    return n\n"
                        "def send_out(pid, n):\n"
                        "    for i in range(n):\n"
                        "        erlang.send(pid, i)\n"
                        "def cb_here(n):\n"
                        "    t = time.perf_counter()\n"
                        "    for i in range(n):\n"
                        "        erlang.call('bench_echo', i)\n"
                        "    return (time.perf_counter() - t) / n * 1e6\n"
                        "def cb_thread(n):\n"
                        "    out = []\n"
                        "    th = threading.Thread(target=lambda: out.append(cb_here(n)))\n"
                        "    th.start()\n"
                        "    th.join()\n"
                        "    return out[0]\n">>),
    ok = py:register_function(bench_echo, fun([X]) -> X end),
    {ok, Box} = py:eval(Ctx, <<"Box()">>, #{}, #{return => ref}),
    MethodUs = us(fun() -> loop(N, fun() -> {ok, 1} = py:call_method(Box, get, []) end) end, N),
    CallUs = us(fun() -> loop(N, fun() -> {ok, 1} = py:call(Ctx, '__main__', get, []) end) end, N),
    M = 200000,
    ChanRate = median([begin
                           {ok, Ch} = py:channel(#{max => 10000}),
                           Self = self(),
                           T0 = erlang:monotonic_time(microsecond),
                           spawn_link(fun() -> Self ! {n, py:call(Ctx, '__main__', consume, [Ch], #{timeout => 120000})} end),
                           chan_fill(Ch, M),
                           ok = py:channel_close(Ch),
                           receive {n, {ok, M}} -> ok end,
                           M / ((erlang:monotonic_time(microsecond) - T0) / 1.0e6)
                       end || _ <- lists:seq(1, ?RUNS)]),
    SendRate = median([begin
                           T0 = erlang:monotonic_time(microsecond),
                           {ok, none} = py:call(Ctx, '__main__', send_out, [self(), M], #{timeout => 120000}),
                           [receive I -> ok end || I <- lists:seq(0, M - 1)],
                           M / ((erlang:monotonic_time(microsecond) - T0) / 1.0e6)
                       end || _ <- lists:seq(1, ?RUNS)]),
    K = 2000,
    Here = median([begin {ok, V} = py:call(Ctx, '__main__', cb_here, [K]), V end || _ <- lists:seq(1, ?RUNS)]),
    Thread = median([begin {ok, V} = py:call(Ctx, '__main__', cb_thread, [K]), V end || _ <- lists:seq(1, ?RUNS)]),
    [{"py:call_method on a ref, us", io_lib:format("~.2f", [MethodUs]),
      io_lib:format("py:call of a function: ~.2f us", [CallUs])},
     {"channel into Python (py:channel_send, for msg in ch), messages/s", fmt_int(round(ChanRate)),
      io_lib:format("erlang.send out of Python: ~s messages/s", [fmt_int(round(SendRate))])},
     {"erlang.call from a Python thread, us per call", io_lib:format("~.2f", [Thread]),
      io_lib:format("from the thread serving the request: ~.2f us", [Here])}].

chan_fill(_Ch, 0) -> ok;
chan_fill(Ch, K) ->
    case py:channel_send(Ch, K) of
        ok -> chan_fill(Ch, K - 1);
        {error, full} -> erlang:yield(), chan_fill(Ch, K)
    end.

%% CPU time (user + system) of this OS process over `Ms' ms, in ms.
cpu_ms(Ms) ->
    T0 = proc_cpu(),
    timer:sleep(Ms),
    proc_cpu() - T0.

proc_cpu() ->
    {ok, Stat} = file:read_file("/proc/self/stat"),
    [_, AfterComm] = binary:split(Stat, <<") ">>),
    Fields = binary:split(AfterComm, <<" ">>, [global]),
    %% utime and stime are fields 14 and 15 of stat, 12 and 13 after the command
    Ticks = binary_to_integer(lists:nth(12, Fields)) + binary_to_integer(lists:nth(13, Fields)),
    Ticks * 10.

wait_count(Key, Want) ->
    case py:state_fetch(Key) of
        {ok, Want} -> ok;
        _ -> erlang:yield(), wait_count(Key, Want)
    end.

conversion_rows() ->
    Ctx = py:context(1),
    Bin = binary:copy(<<"x">>, 1 bsl 20),
    Ints = lists:seq(1, 100000),
    Map = maps:from_list([{integer_to_binary(I), I} || I <- lists:seq(1, 10000)]),
    Nested = lists:foldl(fun(I, Acc) -> #{<<"level">> => I, <<"child">> => [Acc]} end, #{}, lists:seq(1, 20)),
    Row = fun(Name, X, Units, Unit) ->
              T = median([element(1, timer:tc(fun() -> {ok, _} = py:call(Ctx, builtins, id, [X]) end))
                          || _ <- lists:seq(1, ?RUNS)]),
              %% builtins.id returns an int: this is the Erlang -> Python direction
              T2 = median([element(1, timer:tc(fun() -> {ok, _} = py:eval(Ctx, <<"x">>, #{x => X}) end))
                           || _ <- lists:seq(1, ?RUNS)]),
              [{Name ++ ", to Python", float(T), io_lib:format("~.3f us/~s", [T / Units, Unit])},
               {Name ++ ", to Python and back", float(T2), io_lib:format("~.3f us/~s", [T2 / Units, Unit])}]
          end,
    lists:append([Row("1 MB binary as bytes", {'$bytes', Bin}, 1, "MB"),
                  Row("1 MB binary as text", Bin, 1, "MB"),
                  Row("100,000-integer list", Ints, 100000, "element"),
                  Row("map of 10,000 keys", Map, 10000, "key"),
                  Row("20-level nested structure", Nested, 20, "level")]).

%% RSS before and after 1,000,000 trivial calls from 10 callers: it must stay flat.
rss_growth() ->
    erlang:garbage_collect(),
    R0 = rss_mb(),
    Self = self(),
    [spawn_link(fun() -> loop(100000, fun() -> case py:call(math, sqrt, [16]) of
                                                    {ok, 4.0} -> ok;
                                                    {error, {overloaded, _, _}} -> ok
                                                end end), Self ! grown end)
     || _ <- lists:seq(1, 10)],
    [receive grown -> ok end || _ <- lists:seq(1, 10)],
    erlang:garbage_collect(),
    R1 = rss_mb(),
    [{"before 1,000,000 trivial calls", R0}, {"after 1,000,000 trivial calls", R1}].

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
