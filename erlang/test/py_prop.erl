%% Random terms for the conversion property test, and the model of what each
%% must come back as from a Python round trip (py_reliability_SUITE).
%%
%% `term(Depth)' draws from every kind of term: integers of any size, floats,
%% UTF-8 and non-UTF-8 binaries, `{'$bytes', Bin}', atoms (the special ones
%% included), pids, lists, tuples, maps, and terms that cannot cross
%% (references, funs, ports, bitstrings, improper lists). `expected(T)' is
%% `{ok, Canonical}' (what Python gives back: atoms as binaries, `none'/`nil'/
%% `undefined' as `none', `{'$bytes', B}' as `B') or `bad_argument'.
-module(py_prop).
-export([term/1, expected/1]).

-define(ATOMS, [true, false, none, nil, undefined, ok, error, a, b, 'hello world',
                'ünïcödé', '日本', '']).

term(0) -> leaf();
term(D) ->
    case rand:uniform(10) of
        N when N =< 4 -> leaf();
        5 -> [term(D - 1) || _ <- lists:seq(1, rand:uniform(6) - 1)];
        6 -> [term(D - 1) || _ <- lists:seq(1, rand:uniform(6) - 1)];
        7 -> list_to_tuple([term(D - 1) || _ <- lists:seq(1, rand:uniform(5) - 1)]);
        8 -> map(D);
        9 -> map(D);
        10 -> bad()
    end.

leaf() ->
    case rand:uniform(11) of
        1 -> rand:uniform(1000) - 500;
        2 -> (rand:uniform(1 bsl 62) - (1 bsl 61)) * pick([1, 1 bsl 64, 1 bsl 200]);
        3 -> float();
        4 -> utf8();
        5 -> utf8();
        6 -> {'$bytes', bytes()};
        7 -> pick(?ATOMS);
        8 -> pick(?ATOMS);
        9 -> pick([self(), list_to_pid("<0.0.0>")]);
        10 -> rand:uniform(256) - 1;
        11 -> pick([0, -1, 1 bsl 63, -(1 bsl 63), (1 bsl 63) - 1, 1 bsl 64])
    end.

%% Terms that cannot cross; a binary that is not UTF-8 counts among them.
bad() ->
    case rand:uniform(6) of
        1 -> make_ref();
        2 -> fun() -> ok end;
        3 -> hd(erlang:ports());
        4 -> <<1:3>>;
        5 -> [1 | pick([2, <<"x">>, a])];
        6 -> <<255, (bytes())/binary>>
    end.

float() ->
    case rand:uniform(4) of
        1 -> pick([0.0, -0.0, 1.0, -1.5, 5.0e-324, 1.7976931348623157e308]);
        _ -> (rand:uniform() - 0.5) * math:pow(10, rand:uniform(600) - 300)
    end.

utf8() ->
    Chars = [pick([rand:uniform(94) + 32, rand:uniform(16#7ff), rand:uniform(16#d7ff),
                   16#e000 + rand:uniform(16#1ff0), 16#10000 + rand:uniform(16#fffff - 1)])
             || _ <- lists:seq(1, rand:uniform(12) - 1)],
    unicode:characters_to_binary(Chars).

bytes() ->
    << <<(rand:uniform(256) - 1)>> || _ <- lists:seq(1, rand:uniform(10) - 1) >>.

%% Map keys are hashable in Python and distinct there too: integers, text,
%% plain atoms and tuples of those (no floats, booleans or `none', which Python
%% compares equal to numbers or to each other's twins).
map(D) ->
    Pairs = [{key(2), term(D - 1)} || _ <- lists:seq(1, rand:uniform(6) - 1)],
    %% keys that meet in Python (atom `a' and <<"a">>) are not drawn together
    {_, Unique} = lists:foldl(fun({K, V}, {Seen, Acc}) ->
                                      C = canon(K),
                                      case lists:member(C, Seen) of
                                          true -> {Seen, Acc};
                                          false -> {[C | Seen], [{K, V} | Acc]}
                                      end
                              end, {[], []}, Pairs),
    maps:from_list(Unique).

key(0) -> pick([rand:uniform(100), utf8(), pick([ok, error, a, b, 'ünïcödé'])]);
key(D) ->
    case rand:uniform(5) of
        1 -> list_to_tuple([key(D - 1) || _ <- lists:seq(1, rand:uniform(3))]);
        _ -> key(0)
    end.

pick(L) -> lists:nth(rand:uniform(length(L)), L).

expected(T) ->
    try {ok, canon(T)}
    catch throw:bad -> bad_argument
    end.

canon(I) when is_integer(I) -> I;
canon(F) when is_float(F) -> F;
canon(B) when is_binary(B) ->
    case unicode:characters_to_binary(B) of
        B -> B;
        _ -> throw(bad)
    end;
canon(B) when is_bitstring(B) -> throw(bad);
canon(A) when A =:= true; A =:= false -> A;
canon(A) when A =:= none; A =:= nil; A =:= undefined -> none;
canon(A) when is_atom(A) -> atom_to_binary(A, utf8);
canon(P) when is_pid(P) -> P;
canon({'$bytes', B}) when is_binary(B) -> B;
canon(T) when is_tuple(T) -> list_to_tuple([canon(X) || X <- tuple_to_list(T)]);
canon(L) when is_list(L) -> canon_list(L);
canon(M) when is_map(M) -> maps:from_list([{canon(K), canon(V)} || {K, V} <- maps:to_list(M)]);
canon(_) -> throw(bad).

canon_list([]) -> [];
canon_list([H | T]) -> [canon(H) | canon_list(T)];
canon_list(_Improper) -> throw(bad).
