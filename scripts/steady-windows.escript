#!/usr/bin/env escript
%%! -pa erlang/_build/default/lib/erlang_python/ebin
%% One caller making py:call(math, sqrt, [16]) back to back for 60 windows of
%% 50 ms; per window: calls per ms, the caller's scheduler, and for the busy
%% threads of the node (BEAM schedulers 1 and 2, the aux thread, executors 1
%% and 2, context 1) the core each last ran on, its CPU ticks and its
%% voluntary context switches (a thread that went to sleep), then per core the
%% ticks busy, idle and stolen in the window. Shows the phases a five-run
%% median hides (docs/benchmarks.md, "Sixth look"). Run from the repository
%% root after `make build-hooks`: escript scripts/steady-windows.escript
-mode(compile).

main(_) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    [py:call(math, sqrt, [16]) || _ <- lists:seq(1, 2000)],
    Call = fun() -> {ok, _} = py:call(math, sqrt, [16]) end,
    Pid = os:getpid(),
    Tasks = tasks(Pid),
    Rows = [begin
                Cpu0 = cores(),
                Rate = window(Call, 50),
                {Rate, erlang:system_info(scheduler_id), threads(Pid, Tasks), delta(Cpu0, cores())}
            end || _ <- lists:seq(1, 60)],
    [io:format("~p s~p ~s ~w~n", [R, S, T, D]) || {R, S, T, D} <- Rows],
    ok = application:stop(erlang_python).

tasks(Pid) ->
    {ok, Ts} = file:list_dir("/proc/" ++ Pid ++ "/task"),
    Wanted = ["1_scheduler", "2_scheduler", "1_aux", "ep-executor-1", "ep-executor-2", "ep-context-1"],
    lists:filtermap(fun(T) ->
                            {ok, C} = file:read_file("/proc/" ++ Pid ++ "/task/" ++ T ++ "/comm"),
                            N = string:trim(binary_to_list(C)),
                            case lists:member(N, Wanted) of
                                true -> {true, {N, T}};
                                false -> false
                            end
                    end, Ts).

threads(Pid, Tasks) ->
    [begin
         Dir = "/proc/" ++ Pid ++ "/task/" ++ T,
         {ok, B} = file:read_file(Dir ++ "/stat"),
         [_, After] = string:split(binary_to_list(B), ") "),
         Fields = string:lexemes(After, " "),
         Ticks = list_to_integer(lists:nth(12, Fields)) + list_to_integer(lists:nth(13, Fields)),
         {ok, St} = file:read_file(Dir ++ "/status"),
         [_, V0] = string:split(binary_to_list(St), "voluntary_ctxt_switches:\t"),
         [V | _] = string:split(V0, "\n"),
         io_lib:format("~s@~s:~p:v~s ", [short(N), lists:nth(37, Fields), Ticks, V])
     end || {N, T} <- Tasks].

short("1_scheduler") -> "S1";
short("2_scheduler") -> "S2";
short("1_aux") -> "aux";
short("ep-executor-" ++ N) -> "E" ++ N;
short("ep-context-" ++ N) -> "C" ++ N.

%% Per core: user, nice, system, idle, iowait, irq, softirq, steal ticks.
cores() ->
    {ok, B} = file:read_file("/proc/stat"),
    [[list_to_integer(X) || X <- tl(string:lexemes(L, " "))]
     || L <- string:split(binary_to_list(B), "\n", all),
        lists:prefix("cpu", L), not lists:prefix("cpu ", L)].

%% Per core: {busy, idle, steal} ticks between two readings.
delta(A, B) ->
    [begin
         D = [Y - X || {X, Y} <- lists:zip(P, Q)],
         {lists:nth(1, D) + lists:nth(3, D), lists:nth(4, D), lists:nth(8, D)}
     end || {P, Q} <- lists:zip(A, B)].

%% Calls per ms over a window of Ms.
window(F, Ms) ->
    T0 = erlang:monotonic_time(microsecond),
    N = loop(F, T0 + Ms * 1000, 0),
    round(N * 1000 / (erlang:monotonic_time(microsecond) - T0)).

loop(F, End, N) when N rem 100 =:= 0 ->
    case erlang:monotonic_time(microsecond) > End of
        true -> N;
        false -> F(), loop(F, End, N + 1)
    end;
loop(F, End, N) ->
    F(),
    loop(F, End, N + 1).
