%% @private
%% @doc The NIF loader. Every function here returns at once: work is forwarded to
%% actor mailboxes in Rust and answered by message.
-module(py_nif).
-export([submit/3, cancel/1, start/2, stop/1, info/0, noop/0]).
-on_load(init/0).
-nifs([submit/3, cancel/1, start/2, stop/1, info/0, noop/0]).

-spec init() -> ok | {error, term()}.
init() ->
    Dir = case code:priv_dir(erlang_python) of
              {error, bad_name} ->
                  filename:join(filename:dirname(filename:dirname(code:which(?MODULE))), "priv");
              D -> D
          end,
    erlang:load_nif(filename:join(Dir, "py_nif"), 0).

-spec submit(call | eval | exec | echo, tuple() | term(), reference()) ->
          {ok, reference()} | {error, not_started}.
submit(_Op, _Payload, _Tag) -> erlang:nif_error(not_loaded).

-spec cancel(reference()) -> boolean().
cancel(_Handle) -> erlang:nif_error(not_loaded).

-spec start(pos_integer(), reference()) -> ok.
start(_NumExecutors, _Tag) -> erlang:nif_error(not_loaded).

-spec stop(reference()) -> ok.
stop(_Tag) -> erlang:nif_error(not_loaded).

-spec info() -> map().
info() -> erlang:nif_error(not_loaded).

-spec noop() -> ok.
noop() -> erlang:nif_error(not_loaded).
