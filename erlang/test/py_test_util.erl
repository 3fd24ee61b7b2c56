%% Helpers shared by the Common Test suites.
-module(py_test_util).
-export([wait_until/1, wait_until/2]).

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
