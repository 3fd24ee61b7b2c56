%% @private
%% @doc The NIF loader. Every function here returns at once: work is forwarded to
%% actor mailboxes in Rust and answered by message.
-module(py_nif).
-export([submit/4, cancel/1, start/3, start_contexts/2, stop_contexts/1, stop/1, info/0, noop/0]).
-on_load(init/0).
-nifs([submit/4, cancel/1, start/3, start_contexts/2, stop_contexts/1, stop/1, info/0, noop/0]).

-spec init() -> ok | {error, term()}.
init() ->
    Dir = case code:priv_dir(erlang_python) of
              {error, bad_name} ->
                  filename:join(filename:dirname(filename:dirname(code:which(?MODULE))), "priv");
              D -> D
          end,
    erlang:load_nif(filename:join(Dir, "py_nif"), 0).

-spec submit(main | pos_integer(), call | eval | exec | echo | '$crash', term(), reference()) ->
          {ok, reference()} | {error, not_started | {no_context, non_neg_integer()}}.
submit(_Target, _Op, _Payload, _Tag) -> erlang:nif_error(not_loaded).

-spec cancel(reference()) -> boolean().
cancel(_Handle) -> erlang:nif_error(not_loaded).

-spec start(pos_integer(), pos_integer(), reference()) -> ok.
start(_NumExecutors, _NumContexts, _Tag) -> erlang:nif_error(not_loaded).

-spec start_contexts(pos_integer(), reference()) -> ok.
start_contexts(_N, _Tag) -> erlang:nif_error(not_loaded).

-spec stop_contexts(reference()) -> ok.
stop_contexts(_Tag) -> erlang:nif_error(not_loaded).

-spec stop(reference()) -> ok.
stop(_Tag) -> erlang:nif_error(not_loaded).

-spec info() -> map().
info() -> erlang:nif_error(not_loaded).

-spec noop() -> ok.
noop() -> erlang:nif_error(not_loaded).
