%% Helpers shared by the Common Test suites.
-module(py_test_util).
-export([start_app/1, start_app/2, stop_app/0, rss/0, interrupt_stream/3,
         wait_until/1, wait_until/2, call_loop/3, thread_count/0, hold_permit/1,
         slow_generator/0, calls_made/2, with_group_leader/1]).

%% @doc Every suite's init_per_suite: the application started (and, with
%% `#{contexts => N}', N contexts); Config unchanged.
-spec start_app(list()) -> list().
start_app(Config) ->
    start_app(Config, #{}).

-spec start_app(list(), #{contexts => pos_integer()}) -> list().
start_app(Config, Opts) ->
    {ok, _} = application:ensure_all_started(erlang_python),
    case Opts of
        #{contexts := N} -> {ok, _} = py_context_router:start(#{contexts => N});
        _ -> ok
    end,
    Config.

%% @doc The node's resident memory in bytes (Linux, /proc/self/status).
-spec rss() -> non_neg_integer().
rss() ->
    {ok, Status} = file:read_file("/proc/self/status"),
    [_, Rest] = binary:split(Status, <<"VmRSS:">>),
    [Kb | _] = string:lexemes(Rest, " \t\n"),
    binary_to_integer(Kb) * 1024.

%% @doc Every suite's end_per_suite.
-spec stop_app() -> ok.
stop_app() ->
    ok = application:stop(erlang_python).

%% @doc Polls `F' every 10 ms until it returns true: `ok', or the test case fails
%% after `Ms' milliseconds (30 s by default).
-spec wait_until(fun(() -> boolean())) -> ok.
wait_until(F) ->
    wait_until(F, 30000).

-spec wait_until(fun(() -> boolean()), non_neg_integer()) -> ok.
wait_until(F, Ms) ->
    case F() of
        true -> ok;
        false when Ms =< 0 -> ct:fail({condition_never_met, F});
        false -> timer:sleep(10), wait_until(F, Ms - 10)
    end.

%% @doc A caller for lifecycle storms: calls `operator.add(N, 1)' until it gets
%% `Stop', then sends `{calls, self(), Calls, Unexpected}' to `Parent', where
%% `Unexpected' lists every result that is neither the sum nor one of the errors
%% in `Accepted' (what a storm may legitimately answer).
-spec call_loop(pid(), reference(), [term()]) -> ok.
call_loop(Parent, Stop, Accepted) ->
    call_loop(Parent, Stop, Accepted, 0, []).

call_loop(Parent, Stop, Accepted, N, Bad) ->
    receive
        Stop -> Parent ! {calls, self(), N, Bad}, ok
    after 0 ->
        Bad2 = case py:call(operator, add, [N, 1], #{}, 30000) of
                   {ok, V} when V =:= N + 1 -> Bad;
                   {error, E} = Other ->
                       case lists:any(fun(A) -> accepted(A, E) end, Accepted) of
                           true -> Bad;
                           false -> [Other | Bad]
                       end;
                   Other -> [Other | Bad]
               end,
        call_loop(Parent, Stop, Accepted, N + 1, Bad2)
    end.

accepted(no_context, {no_context, _}) -> true;
accepted(A, A) -> true;
accepted(_, _) -> false.

%% @doc The node's OS thread count.
-spec thread_count() -> non_neg_integer().
thread_count() ->
    {ok, Tasks} = file:list_dir("/proc/" ++ os:getpid() ++ "/task"),
    length(Tasks).

%% @doc Starts a request on the main interpreter that holds its semaphore permit
%% until the returned fun is called (a Python loop waiting for a file in the
%% test's `priv_dir'); returns once the request runs. The fun lets it end and
%% returns its result (`ok').
-spec hold_permit(list()) -> fun(() -> term()).
hold_permit(Config) ->
    Gate = filename:join(proplists:get_value(priv_dir, Config),
                         "gate-" ++ integer_to_list(erlang:unique_integer([positive]))),
    Code = iolist_to_binary(["import os, time\nwhile not os.path.exists(r'", Gate, "'):\n"
                             "    time.sleep(0.005)\n"]),
    Self = self(),
    Ref = make_ref(),
    Before = py_semaphore:current(),
    spawn_link(fun() -> Self ! {Ref, py:exec(py:context(main), Code)} end),
    ok = wait_until(fun() -> py_semaphore:current() > Before end),
    fun() ->
        ok = file:write_file(Gate, <<>>),
        receive {Ref, R} -> R end
    end.

%% @doc Python source defining `slow(key)': a generator yielding 1, 2, ...
%% every 0.1 s, whose `finally' stores how many items it made under `key'
%% (`erlang.state_set'), for the tests of stopping a stream.
-spec slow_generator() -> binary().
slow_generator() ->
    <<"import erlang, time\n"
      "def slow(key):\n"
      "    made = 0\n"
      "    try:\n"
      "        while True:\n"
      "            time.sleep(0.1)\n"
      "            made += 1\n"
      "            yield made\n"
      "    finally:\n"
      "        erlang.state_set(key, made)\n">>.

%% @doc Runs `Fun' with calls from this process to the functions `Patterns'
%% name traced (`{M, F, Arity}', or `{{M, F, Arity}, MatchSpec}' to count
%% only the calls it matches), and returns how many calls of each were made:
%% `{Result, #{{M, F} => N}}' (functions not called are not in the map).
-spec calls_made(fun(() -> R), [{module(), atom(), arity()} | {{module(), atom(), arity()}, term()}]) ->
          {R, #{{module(), atom()} => pos_integer()}}.
calls_made(Fun, Patterns) ->
    Self = self(),
    Counter = spawn_link(fun() -> count_calls(Self, #{}) end),
    1 = erlang:trace(self(), true, [call, {tracer, Counter}]),
    MFAs = [case P of {{_, _, _} = MFA, _} -> MFA; MFA -> MFA end || P <- Patterns],
    [{module, M} = code:ensure_loaded(M) || {M, _, _} <- MFAs],
    [1 = erlang:trace_pattern(MFA, Spec, [local])
     || P <- Patterns, {MFA, Spec} <- [case P of {{_, _, _}, _} -> P; _ -> {P, true} end]],
    Result = try
                 Fun()
             after
                 erlang:trace(self(), false, [call]),
                 [erlang:trace_pattern(MFA, false, [local]) || MFA <- MFAs]
             end,
    %% the trace messages of the calls above reach the counter before this
    Counter ! {counts, self()},
    receive {counts, Counts} -> {Result, Counts} after 5000 -> error(no_counts) end.

count_calls(Owner, Counts) ->
    receive
        {trace, Owner, call, {M, F, _}} -> count_calls(Owner, maps:update_with({M, F}, fun(N) -> N + 1 end, 1, Counts));
        {counts, To} -> To ! {counts, Counts}
    end.

%% @doc Runs `F' in a process whose group leader keeps what is written to
%% it; returns that text.
-spec with_group_leader(fun(() -> term())) -> binary().
with_group_leader(F) ->
    Self = self(),
    GL = spawn_link(fun() -> group_leader_loop(Self, []) end),
    P = spawn_link(fun() -> group_leader(GL, self()), F(), Self ! {done, self()} end),
    receive {done, P} -> ok after 30000 -> ct:fail(function_stuck) end,
    GL ! {get, Self},
    receive {text, T} -> T after 5000 -> ct:fail(no_text) end.

group_leader_loop(Owner, Acc) ->
    receive
        {io_request, From, ReplyAs, {put_chars, _Enc, Chars}} ->
            From ! {io_reply, ReplyAs, ok},
            group_leader_loop(Owner, [Chars | Acc]);
        {io_request, From, ReplyAs, {put_chars, _Enc, M, F, A}} ->
            From ! {io_reply, ReplyAs, ok},
            group_leader_loop(Owner, [apply(M, F, A) | Acc]);
        {io_request, From, ReplyAs, _} ->
            From ! {io_reply, ReplyAs, {error, enotsup}},
            group_leader_loop(Owner, Acc);
        {get, Whom} ->
            Whom ! {text, unicode:characters_to_binary(lists:reverse(Acc))},
            group_leader_loop(Owner, Acc)
    end.

%% Interrupts the stream `R' of context `Ctx' with py:interrupt/1, again every
%% 50 ms (at most `N' times) until it ends: what it ended with, or a failure
%% if it ran to its end. Repeated whether chunks still come or not: an
%% interruption that lands between two pulls finds nothing running.
-spec interrupt_stream({py_context, term()}, reference(), non_neg_integer()) -> term().
interrupt_stream(Ctx, _R, 0) ->
    ct:fail({stream_not_interrupted, Ctx});
interrupt_stream(Ctx, R, N) ->
    ok = py:interrupt(Ctx),
    case drain_stream(R, erlang:monotonic_time(millisecond) + 50) of
        {error, E} -> E;
        'end' -> ct:fail({stream_ran_to_its_end, Ctx});
        more -> interrupt_stream(Ctx, R, N - 1)
    end.

drain_stream(R, Until) ->
    receive
        {py_chunk, R, _} -> drain_stream(R, Until);
        {py_error, R, E} -> {error, E};
        {py_end, R} -> 'end'
    after max(0, Until - erlang:monotonic_time(millisecond)) -> more
    end.
