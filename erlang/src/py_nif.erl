%% @private
%% @doc The NIF loader. Every function here returns at once: work is forwarded to
%% actor mailboxes in Rust and answered by message.
-module(py_nif).
-export([state_store/2, state_store_ext/2, state_store_ext_dirty/2, state_fetch/1, state_fetch_dirty/1, state_remove/1, state_keys/0, state_clear/0, state_incr/2,
         submit/5, submit_dirty/5, cast/4, cast_dirty/4, callback_registered/2, callback_registry_reset/0, withdraw/1, stream_start/4, stream_start_dirty/4, stream_active/2, stream_cancel/1, stream_done/1, interrupt/1, callback_reply/2, callback_reply_dirty/2, cancel/1, waited/1, semaphore_get/1, semaphore_set_max/1, pin_threads/1, max_terms/1, malloc_thresholds/2, start/3, start_contexts/2, start_pool/4, stop_pool/2, setup/3, venv_configure/1, logging_configure/1, logging_handled/1, logging_dropped/0, route/1, bind/1, binding/0, spread/1, routes/0, route_to_main/1, is_ref/1, channel_open/1, channel_send/2, channel_send_dirty/2, channel_close/1, channel_len/1, stop_contexts/1, stop/1, info/0, load/0, console/1, trace_config/3, trace_dropped/0, direct_call/1, noop/0]).
-on_load(init/0).
-nifs([state_store/2, state_store_ext/2, state_store_ext_dirty/2, state_fetch/1, state_fetch_dirty/1, state_remove/1, state_keys/0, state_clear/0, state_incr/2,
       submit/5, submit_dirty/5, cast/4, cast_dirty/4, callback_registered/2, callback_registry_reset/0, withdraw/1, stream_start/4, stream_start_dirty/4, stream_active/2, stream_cancel/1, stream_done/1, interrupt/1, callback_reply/2, callback_reply_dirty/2, cancel/1, waited/1, semaphore_get/1, semaphore_set_max/1, pin_threads/1, max_terms/1, malloc_thresholds/2, start/3, start_contexts/2, start_pool/4, stop_pool/2, setup/3, venv_configure/1, logging_configure/1, logging_handled/1, logging_dropped/0, route/1, bind/1, binding/0, spread/1, routes/0, route_to_main/1, is_ref/1, channel_open/1, channel_send/2, channel_send_dirty/2, channel_close/1, channel_len/1, stop_contexts/1, stop/1, info/0, load/0, console/1, trace_config/3, trace_dropped/0, direct_call/1, noop/0]).

%% Where a request goes: the main interpreter, a context, the caller's context
%% (`auto': bound, else placed by the router), or a context of a pool.
-type target() :: main | pos_integer() | auto | {pool, atom()}.
-type refusal() :: not_started | context_stopped | {no_context, non_neg_integer()} | {no_pool, atom()}.
-export_type([target/0]).

-spec init() -> ok | {error, term()}.
init() ->
    Dir = case code:priv_dir(erlang_python) of
              {error, bad_name} ->
                  filename:join(filename:dirname(filename:dirname(code:which(?MODULE))), "priv");
              D -> D
          end,
    erlang:load_nif(filename:join(Dir, "py_nif"), 0).

%% `dirty': the result is too large to decode on this scheduler in one time
%% slice, and was not given: give it with callback_reply_dirty/2.
-spec callback_reply(reference(), {ok, term()} | {error, term()}) -> boolean() | dirty.
callback_reply(_Handle, _Result) -> erlang:nif_error(not_loaded).

-spec callback_reply_dirty(reference(), {ok, term()} | {error, term()}) -> boolean().
callback_reply_dirty(_Handle, _Result) -> erlang:nif_error(not_loaded).

-spec submit(target(), call | eval | exec | stream_call | stream_eval | async_call | async_stream
             | call_ref | eval_ref | ref | echo | '$crash',
             term(), term(),
             reference() | {callbacks, sink} | {callbacks, sink, reference()} | undefined) ->
          {ok, reference()} | {promised, reference()} | {queued, reference()}
          | dirty | {error, refusal()}.
%% An integer tag: the caller handles `{py_late, Tag}' (py:request/4), and
%% `promised' says it may wait with no timer until that nudge comes.
submit(_Target, _Op, _Payload, _Tag, _Chain) -> erlang:nif_error(not_loaded).

%% `submit/5' on a dirty CPU scheduler, for a payload that answered `dirty'
%% (too large to decode within a normal scheduler's time slice).
-spec submit_dirty(target(), atom(), term(), term(), reference() | {callbacks, sink} | {callbacks, sink, reference()} | undefined) ->
          {ok | promised | queued, reference()} | {error, term()}.
submit_dirty(_Target, _Op, _Payload, _Tag, _Chain) -> erlang:nif_error(not_loaded).

-spec cast(target(), tuple(), reference(), pid()) ->
          ok | {queued, reference()} | dirty | {error, refusal() | {overloaded, non_neg_integer(), pos_integer()}}.
cast(_Target, _Payload, _Tag, _Sink) -> erlang:nif_error(not_loaded).

%% `cast/4' on a dirty CPU scheduler, for a payload that answered `dirty'.
-spec cast_dirty(target(), tuple(), reference(), pid()) ->
          ok | {queued, reference()} | {error, term()}.
cast_dirty(_Target, _Payload, _Tag, _Sink) -> erlang:nif_error(not_loaded).

-spec stream_start(target(), tuple(), reference(), true | pos_integer()) ->
          {ok | queued, reference(), reference()} | dirty | {error, refusal()}.
stream_start(_Target, _Payload, _Tag, _Active) -> erlang:nif_error(not_loaded).

%% `stream_start/4' on a dirty CPU scheduler, for a payload that answered `dirty'.
-spec stream_start_dirty(target(), tuple(), reference(), true | pos_integer()) ->
          {ok | queued, reference(), reference()} | {error, term()}.
stream_start_dirty(_Target, _Payload, _Tag, _Active) -> erlang:nif_error(not_loaded).

-spec stream_active(reference(), true | pos_integer()) -> ok.
stream_active(_Stream, _Active) -> erlang:nif_error(not_loaded).

-spec stream_cancel(reference()) -> ok.
stream_cancel(_Stream) -> erlang:nif_error(not_loaded).

-spec stream_done(reference()) -> boolean().
stream_done(_Stream) -> erlang:nif_error(not_loaded).

-spec callback_registry_reset() -> ok.
callback_registry_reset() -> erlang:nif_error(not_loaded).

-spec callback_registered(binary(), boolean()) -> ok.
callback_registered(_Name, _Registered) -> erlang:nif_error(not_loaded).

%% How long the caller of a call handle has waited so far, in milliseconds
%% (since the handle was made).
-spec waited(reference()) -> non_neg_integer().
waited(_Handle) -> erlang:nif_error(not_loaded).

-spec withdraw(reference()) -> boolean().
withdraw(_Handle) -> erlang:nif_error(not_loaded).

-spec interrupt(target()) -> ok | {error, refusal()}.
interrupt(_Target) -> erlang:nif_error(not_loaded).

-spec semaphore_get(max | current | waiting) -> non_neg_integer().
semaphore_get(_Which) -> erlang:nif_error(not_loaded).

-spec semaphore_set_max(pos_integer()) -> ok.
semaphore_set_max(_N) -> erlang:nif_error(not_loaded).

-spec pin_threads(Pin :: boolean()) -> ok.
pin_threads(_Pin) -> erlang:nif_error(not_loaded).

%% glibc's mmap and trim thresholds, in bytes (the `malloc_thresholds'
%% setting): `unchanged' on another libc, for a value glibc refuses, or when
%% the environment (`MALLOC_MMAP_THRESHOLD_', `GLIBC_TUNABLES', ...) set them.
-spec malloc_thresholds(Mmap :: non_neg_integer(), Trim :: non_neg_integer()) -> ok | unchanged.
malloc_thresholds(_Mmap, _Trim) -> erlang:nif_error(not_loaded).

%% The most terms one conversion makes, either way (the `max_terms' setting).
-spec max_terms(Max :: pos_integer()) -> ok.
max_terms(_Max) -> erlang:nif_error(not_loaded).

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

-spec state_store(term(), term()) -> ok.
state_store(_K, _V) -> erlang:nif_error(not_loaded).

%% The value given made external already (term_to_binary/1). `dirty': too
%% large to copy in on this scheduler in one time slice, and not stored:
%% store it with state_store_ext_dirty/2.
-spec state_store_ext(term(), binary()) -> ok | dirty.
state_store_ext(_K, _Ext) -> erlang:nif_error(not_loaded).

-spec state_store_ext_dirty(term(), binary()) -> ok.
state_store_ext_dirty(_K, _Ext) -> erlang:nif_error(not_loaded).

%% `dirty': the value is too large to make a term of on this scheduler in
%% one time slice: fetch it with state_fetch_dirty/1.
-spec state_fetch(term()) -> {ok, term()} | {error, not_found} | dirty.
state_fetch(_K) -> erlang:nif_error(not_loaded).

-spec state_fetch_dirty(term()) -> {ok, term()} | {error, not_found}.
state_fetch_dirty(_K) -> erlang:nif_error(not_loaded).

-spec state_remove(term()) -> ok.
state_remove(_K) -> erlang:nif_error(not_loaded).

-spec state_keys() -> [term()].
state_keys() -> erlang:nif_error(not_loaded).

-spec state_clear() -> ok.
state_clear() -> erlang:nif_error(not_loaded).

-spec state_incr(term(), integer()) -> {ok, integer()} | {error, not_integer | overflow}.
state_incr(_K, _By) -> erlang:nif_error(not_loaded).

-spec load() -> {[map()], [map()]}.
load() -> erlang:nif_error(not_loaded).

-spec console(binary()) -> ok | {error, not_built | binary()}.
console(_Addr) -> erlang:nif_error(not_loaded).

-spec trace_config(pid(), 0..5, non_neg_integer()) -> ok | {error, binary()}.
trace_config(_To, _Level, _SlowUs) -> erlang:nif_error(not_loaded).

-spec trace_dropped() -> non_neg_integer().
trace_dropped() -> erlang:nif_error(not_loaded).

-spec direct_call({binary(), binary(), list(), map()}) -> {ok, term()} | {error, term()}.
direct_call(_Payload) -> erlang:nif_error(not_loaded).

-spec noop() -> ok.
noop() -> erlang:nif_error(not_loaded).

-spec start_pool(atom(), pos_integer(), none | {process, pos_integer() | infinity}, reference()) -> ok.
start_pool(_Name, _N, _Isolation, _Tag) -> erlang:nif_error(not_loaded).

-spec stop_pool(atom(), reference()) -> ok.
stop_pool(_Name, _Tag) -> erlang:nif_error(not_loaded).

-spec route(auto | {pool, atom()}) -> {py_context, pos_integer() | main} | {error, refusal()}.
route(_Want) -> erlang:nif_error(not_loaded).

-spec bind(main | pos_integer() | {pool, atom()} | undefined) -> ok.
bind(_To) -> erlang:nif_error(not_loaded).

-spec binding() -> main | pos_integer() | {pool, atom()} | undefined.
binding() -> erlang:nif_error(not_loaded).

-spec spread(non_neg_integer()) -> [main | pos_integer()].
spread(_K) -> erlang:nif_error(not_loaded).

-spec routes() -> #{default := [pos_integer()], pool := #{atom() => [pos_integer()]},
                    main_modules := [binary()], processes := non_neg_integer()}.
routes() -> erlang:nif_error(not_loaded).

-spec route_to_main(binary()) -> ok.
route_to_main(_Module) -> erlang:nif_error(not_loaded).

-spec is_ref(term()) -> boolean().
is_ref(_Term) -> erlang:nif_error(not_loaded).

-spec channel_open(pos_integer()) -> reference().
channel_open(_Max) -> erlang:nif_error(not_loaded).

%% `dirty': the term is too large to decode on this scheduler in one time
%% slice, and was not sent: send it with channel_send_dirty/2.
-spec channel_send(reference(), term()) -> ok | dirty | {error, full | closed | {bad_argument, binary()}}.
channel_send(_Ch, _Term) -> erlang:nif_error(not_loaded).

-spec channel_send_dirty(reference(), term()) -> ok | {error, full | closed | {bad_argument, binary()}}.
channel_send_dirty(_Ch, _Term) -> erlang:nif_error(not_loaded).

-spec channel_close(reference()) -> ok | {error, {bad_argument, binary()}}.
channel_close(_Ch) -> erlang:nif_error(not_loaded).

-spec channel_len(reference()) -> non_neg_integer() | {error, {bad_argument, binary()}}.
channel_len(_Ch) -> erlang:nif_error(not_loaded).

-spec setup([binary()], [binary()], binary()) -> ok.
setup(_PythonPath, _Imports, _PreloadCode) -> erlang:nif_error(not_loaded).

-spec logging_configure(integer()) -> ok.
logging_configure(_Level) -> erlang:nif_error(not_loaded).

-spec logging_handled(non_neg_integer()) -> ok.
logging_handled(_N) -> erlang:nif_error(not_loaded).

-spec logging_dropped() -> non_neg_integer().
logging_dropped() -> erlang:nif_error(not_loaded).

-spec venv_configure([binary()]) -> ok.
venv_configure(_SitePackages) -> erlang:nif_error(not_loaded).
