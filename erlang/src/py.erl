%% @doc Call Python from Erlang.
%%
%% Every call returns `{ok, Value}' or `{error, Reason}' and never crashes the
%% caller. Reasons:
%% <ul>
%% <li>`{ExceptionName, Message}': Python raised, e.g. `{'ValueError', <<"...">>}'.
%%     The formatted traceback of the last failed call of the calling process is
%%     returned by {@link last_traceback/0}.</li>
%% <li>`timeout': no answer within the timeout; the reply will never arrive later.</li>
%% <li>`{bad_argument, Message}': a term that cannot cross to Python
%%     (references, funs, ports, invalid UTF-8 binaries, nesting deeper than 500).</li>
%% <li>`{unsupported_type, TypeName}' / `{bad_result, Message}': a Python result
%%     with no Erlang counterpart.</li>
%% <li>`not_started': the application is not running.</li>
%% </ul>
%% Code is a binary or a string. Module and function names are atoms, binaries or
%% strings; a dotted function name (`<<"path.join">>') walks attributes, and the
%% module `'__main__'' means the globals that `exec' and `eval' use.
-module(py).

-export([call/3, call/4, call/5,
         eval/1, eval/2, eval/3,
         exec/1,
         version/0, execution_mode/0, num_executors/0, subinterp_supported/0,
         last_traceback/0]).

-export_type([value/0, error/0, kwargs/0]).

-type value() :: term().
-type error() :: {atom(), binary()} | timeout | not_started
               | {bad_argument, binary()} | {unsupported_type, binary()}
               | {bad_result, binary()}.
-type kwargs() :: #{atom() | binary() => term()}.
-type name() :: atom() | binary() | string().
-type code() :: binary() | string().

%% @doc Calls `Module.Function(*Args)'.
-spec call(name(), name(), list()) -> {ok, value()} | {error, error()}.
call(Module, Function, Args) ->
    call(Module, Function, Args, #{}, default_timeout()).

%% @doc Calls `Module.Function(*Args, **Kwargs)'.
-spec call(name(), name(), list(), kwargs()) -> {ok, value()} | {error, error()}.
call(Module, Function, Args, Kwargs) ->
    call(Module, Function, Args, Kwargs, default_timeout()).

%% @doc Calls `Module.Function(*Args, **Kwargs)', waiting at most `Timeout' ms.
-spec call(name(), name(), list(), kwargs(), timeout()) -> {ok, value()} | {error, error()}.
call(Module, Function, Args, Kwargs, Timeout) ->
    maybe_request(fun() ->
        {call, {name(Module, module), name(Function, function),
                list(Args), kwargs(Kwargs)}}
    end, Timeout).

%% @doc Evaluates a Python expression.
-spec eval(code()) -> {ok, value()} | {error, error()}.
eval(Code) ->
    eval(Code, #{}, default_timeout()).

%% @doc Evaluates a Python expression with extra local names.
-spec eval(code(), map()) -> {ok, value()} | {error, error()}.
eval(Code, Locals) ->
    eval(Code, Locals, default_timeout()).

%% @doc Evaluates a Python expression with extra local names and a timeout.
-spec eval(code(), map(), timeout()) -> {ok, value()} | {error, error()}.
eval(Code, Locals, Timeout) ->
    maybe_request(fun() -> {eval, {code(Code), locals(Locals)}} end, Timeout).

%% @doc Executes Python statements; names they define stay in the globals.
-spec exec(code()) -> ok | {error, error()}.
exec(Code) ->
    case maybe_request(fun() -> {exec, {code(Code)}} end, default_timeout()) of
        {ok, ok} -> ok;
        {error, _} = E -> E
    end.

%% @doc The linked Python's `sys.version'.
-spec version() -> {ok, binary()} | {error, not_started}.
version() ->
    case py_nif:info() of
        #{<<"version">> := V} -> {ok, V};
        _ -> {error, not_started}
    end.

%% @doc `free_threaded | subinterp | multi_executor'.
-spec execution_mode() -> free_threaded | subinterp | multi_executor.
execution_mode() ->
    Info = py_nif:info(),
    binary_to_atom(maps:get(<<"mode">>, Info, maps:get(<<"build_mode">>, Info))).

%% @doc How many executor threads serve calls.
-spec num_executors() -> non_neg_integer().
num_executors() ->
    maps:get(<<"num_executors">>, py_nif:info()).

%% @doc Whether the linked Python can run OWN_GIL sub-interpreters (3.12+, GIL build).
-spec subinterp_supported() -> boolean().
subinterp_supported() ->
    maps:get(<<"subinterp_supported">>, py_nif:info(), false).

%% @doc The formatted Python traceback of this process's last call that raised.
-spec last_traceback() -> {ok, binary()} | {error, none}.
last_traceback() ->
    case get(py_last_traceback) of
        undefined -> {error, none};
        Tb -> {ok, Tb}
    end.

%%% Internal

default_timeout() ->
    application:get_env(erlang_python, call_timeout, 30000).

maybe_request(Build, Timeout) ->
    try Build() of
        {Op, Payload} -> request(Op, Payload, Timeout)
    catch
        throw:{bad_argument, _} = Bad -> {error, Bad}
    end.

request(Op, Payload, Timeout) ->
    Tag = make_ref(),
    case py_nif:submit(Op, Payload, Tag) of
        {ok, Handle} ->
            receive
                {py_reply, Tag, Result} -> Result;
                {py_reply, Tag, Error, Traceback} -> put(py_last_traceback, Traceback), Error
            after Timeout ->
                case py_nif:cancel(Handle) of
                    true -> {error, timeout};
                    false -> await_sent(Tag)
                end
            end;
        {error, _} = Error ->
            Error
    end.

%% The reply was already being sent when we gave up: it is in our mailbox or about to be.
await_sent(Tag) ->
    receive
        {py_reply, Tag, Result} -> Result;
        {py_reply, Tag, Error, Traceback} -> put(py_last_traceback, Traceback), Error
    end.

name(A, _) when is_atom(A) -> atom_to_binary(A, utf8);
name(B, What) when is_binary(B) -> utf8(B, What);
name(L, What) when is_list(L) -> chars(L, What);
name(_, What) -> bad(What, <<" name must be an atom, binary or string">>).

code(B) when is_binary(B) -> no_nul(utf8(B, code));
code(L) when is_list(L) -> no_nul(chars(L, code));
code(_) -> bad(code, <<" must be a binary or a string">>).

no_nul(Code) ->
    case binary:match(Code, <<0>>) of
        nomatch -> Code;
        _ -> bad(code, <<" contains a NUL byte">>)
    end.

list(L) when is_list(L) -> L;
list(_) -> bad(arguments, <<" must be a list">>).

kwargs(M) when is_map(M) -> M;
kwargs(_) -> bad(keyword_arguments, <<" must be a map">>).

locals(M) when is_map(M) -> M;
locals(_) -> bad(locals, <<" must be a map">>).

utf8(B, What) ->
    case unicode:characters_to_binary(B) of
        Bin when is_binary(Bin) -> Bin;
        _ -> bad(What, <<" is not valid UTF-8">>)
    end.

chars(L, What) ->
    try unicode:characters_to_binary(L) of
        Bin when is_binary(Bin) -> Bin;
        _ -> bad(What, <<" is not a valid string">>)
    catch
        error:_ -> bad(What, <<" is not a valid string">>)
    end.

bad(What, Why) ->
    throw({bad_argument, <<(atom_to_binary(What, utf8))/binary, Why/binary>>}).
