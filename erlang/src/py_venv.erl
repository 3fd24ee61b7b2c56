%% @doc Virtual environments for the Python of every context.
%%
%% {@link ensure/3} creates a venv with the Python this node is linked against
%% (so its ABI matches), installs requirements into it with pip (or uv), and
%% activates it: its site-packages go on `sys.path' of every interpreter running
%% now, and of every one started later (the NIF keeps them for new contexts).
%% Installs run as OS processes through ports, so no interpreter thread and no
%% scheduler waits on pip; their output is logged and they have a timeout. What
%% was installed is recorded in the venv (`.erlang_python_requirements'): the same
%% requirements again install nothing. A failed install leaves the previously
%% active environment active.
-module(py_venv).

-export([ensure/3, activate/1, deactivate/0, info/0]).

-define(ACTIVE, {?MODULE, active}).
-define(MARKER, ".erlang_python_requirements").
-define(DEFAULT_TIMEOUT, 600000).
-define(BAD_PATH, <<"the venv's path must be text, not empty">>).

-type requirements() :: [unicode:chardata()] | file:filename_all().
-type opts() :: #{installer => pip | uv, timeout => timeout(), install_args => [unicode:chardata()]}.
-export_type([requirements/0, opts/0]).

%% @doc See {@link py:ensure_venv/3}.
-spec ensure(Path :: file:filename_all(), Requirements :: requirements(), Opts :: opts()) ->
          ok | {error, term()}.
ensure(Path, Requirements, Opts) when is_map(Opts) ->
    Timeout = maps:get(timeout, Opts, ?DEFAULT_TIMEOUT),
    Installer = maps:get(installer, Opts, pip),
    Args = maps:get(install_args, Opts, []),
    case bad_option(Path, Installer, Timeout, Args) of
        false ->
            Extra = [to_list(A) || A <- Args],
            maybe_ensure(to_list(Path), requirement_args(Requirements), Installer, Extra, Timeout);
        Why ->
            {error, {bad_argument, Why}}
    end;
ensure(_Path, _Requirements, _Opts) ->
    {error, {bad_argument, <<"options must be a map">>}}.

%% What is wrong with the arguments of ensure/3, if anything.
bad_option(Path, Installer, Timeout, Args) ->
    bad_option_text(path_ok(Path), Installer, Timeout, Args).

%% A path a venv can be made or found at: text, not empty, no NUL.
path_ok(A) when is_atom(A) -> A =/= '';
path_ok(P) when is_binary(P); is_list(P) ->
    try unicode:characters_to_list(P) of
        [_ | _] = L -> io_lib:printable_unicode_list(L);
        _ -> false
    catch
        error:_ -> false
    end;
path_ok(_) -> false.

bad_option_text(false, _Installer, _Timeout, _Args) ->
    ?BAD_PATH;
bad_option_text(true, Installer, _Timeout, _Args) when Installer =/= pip, Installer =/= uv ->
    <<"installer must be pip or uv">>;
bad_option_text(true, _Installer, Timeout, _Args)
  when Timeout =/= infinity, not (is_integer(Timeout) andalso Timeout >= 0 andalso Timeout =< 16#ffffffff) ->
    <<"timeout must be an integer of milliseconds from 0 to 4294967295, or infinity">>;
bad_option_text(true, _Installer, _Timeout, Args) ->
    case is_list(Args) andalso (Args =:= [] orelse not is_integer(hd(Args)))
         andalso (catch lists:all(fun is_text/1, Args)) =:= true of
        true -> false;
        false -> <<"install_args must be a list of strings">>
    end.

maybe_ensure(_Dir, {error, _} = E, _, _, _) ->
    E;
maybe_ensure(Dir, {ok, ReqArgs, Record0}, Installer, Extra, Timeout) ->
    Record = iolist_to_binary([atom_to_list(Installer), $\n, lists:join($\s, Extra), $\n, Record0]),
    Marker = filename:join(Dir, ?MARKER),
    case created(Dir, Timeout) of
        ok ->
            case file:read_file(Marker) of
                {ok, Record} ->
                    activate(Dir);
                _ ->
                    case install(Dir, Installer, Extra ++ ReqArgs, Timeout) of
                        ok ->
                            ok = file:write_file(Marker, Record),
                            activate(Dir);
                        {error, _} = E ->
                            E
                    end
            end;
        {error, _} = E ->
            E
    end.

%% @doc See {@link py:activate_venv/1}.
-spec activate(Path :: file:filename_all()) ->
          ok | {error, {not_a_venv | incompatible_venv, file:filename_all()} | term()}.
activate(Path) ->
    case path_ok(Path) of
        true -> activate_dir(Path, to_list(Path));
        false -> {error, {bad_argument, ?BAD_PATH}}
    end.

activate_dir(Path, Dir) ->
    case filelib:is_regular(filename:join(Dir, "pyvenv.cfg")) of
        false ->
            {error, {not_a_venv, Path}};
        true ->
            case site_packages(Dir) of
                {ok, []} ->
                    %% made with another Python: nothing of it fits this one
                    {error, {incompatible_venv, Path}};
                {ok, Sites} ->
                    _ = deactivate(),
                    ok = py_nif:venv_configure(Sites),
                    %% ahead of the base Python's site-packages (erlang._venv_add)
                    Result = everywhere(<<"__import__('erlang')._venv_add(ds)">>, Sites),
                    persistent_term:put(?ACTIVE, #{path => unicode:characters_to_binary(Dir), site_packages => Sites}),
                    Result;
                {error, _} = E ->
                    E
            end
    end.

%% @doc See {@link py:deactivate_venv/0}.
-spec deactivate() -> ok.
deactivate() ->
    case persistent_term:get(?ACTIVE, undefined) of
        undefined ->
            ok;
        #{site_packages := Sites} ->
            ok = py_nif:venv_configure([]),
            _ = everywhere(<<"[__import__('sys').path.remove(d) for d in ds if d in __import__('sys').path] and None">>, Sites),
            _ = persistent_term:erase(?ACTIVE),
            ok
    end.

%% @doc See {@link py:venv_info/0}.
-spec info() -> {ok, #{active := boolean(), path => binary(), site_packages => [binary()]}}.
info() ->
    case persistent_term:get(?ACTIVE, undefined) of
        undefined -> {ok, #{active => false}};
        Active -> {ok, Active#{active => true}}
    end.

%%% Internal

%% Requirement strings as pip arguments, or a requirements file (`-r File'),
%% and what is recorded of them.
requirement_args(Reqs) when is_list(Reqs), Reqs =/= [], not is_integer(hd(Reqs)) ->
    case lists:all(fun is_text/1, Reqs) of
        true ->
            Args = [to_list(R) || R <- Reqs],
            {ok, Args, iolist_to_binary(lists:join($\n, lists:sort(Args)))};
        false ->
            {error, {bad_argument, <<"requirements must be strings, or a requirements file">>}}
    end;
requirement_args([]) ->
    {ok, [], <<>>};
requirement_args(File) ->
    case is_text(File) andalso file:read_file(to_list(File)) of
        {ok, Content} -> {ok, ["-r", to_list(File)], Content};
        _ -> {error, {bad_argument, <<"requirements must be strings, or a requirements file">>}}
    end.

created(Dir, Timeout) ->
    case filelib:is_regular(filename:join(Dir, "pyvenv.cfg")) of
        true ->
            ok;
        false ->
            case run(linked_python(), ["-m", "venv", Dir], Timeout) of
                {ok, _} -> ok;
                {error, Why} -> {error, {venv_failed, Why}}
            end
    end.

install(_Dir, _Installer, [], _Timeout) ->
    ok;
install(Dir, pip, Args, Timeout) ->
    report(run(filename:join([Dir, "bin", "python"]), ["-m", "pip", "install", "--disable-pip-version-check" | Args], Timeout));
install(Dir, uv, Args, Timeout) ->
    case os:find_executable("uv") of
        false -> {error, {installer_not_found, uv}};
        Uv -> report(run(Uv, ["pip", "install", "--python", filename:join([Dir, "bin", "python"]) | Args], Timeout))
    end.

report({ok, Output}) ->
    logger:info("erlang_python: install done:~n~ts", [Output], #{domain => [erlang_python]}),
    ok;
report({error, {Status, Output}}) when is_integer(Status) ->
    logger:warning("erlang_python: install failed (exit status ~p):~n~ts", [Status, Output], #{domain => [erlang_python]}),
    {error, {install_failed, Output}};
report({error, timeout}) ->
    {error, {install_failed, <<"timed out">>}}.

%% The Python this node is linked against (written by scripts/build-nif).
linked_python() ->
    case file:read_file(filename:join(code:priv_dir(erlang_python), "python.txt")) of
        {ok, Bin} -> string:trim(binary_to_list(Bin));
        {error, _} ->
            {ok, Exe} = py:eval(py:context(main), <<"__import__('sys')._base_executable">>),
            binary_to_list(Exe)
    end.

site_packages(Dir) ->
    %% a lambda: a comprehension in eval does not see eval's locals
    Code = <<"(lambda d: sorted({__import__('sysconfig').get_path(k, vars={'base': d, 'platbase': d}) "
             "for k in ('purelib', 'platlib')}))(d)">>,
    case py:eval(py:context(main), Code, #{d => unicode:characters_to_binary(Dir)}) of
        {ok, Sites} -> {ok, [S || S <- Sites, filelib:is_dir(S)]};
        {error, _} = E -> E
    end.

%% Runs `Code' (with `ds' = Sites) in every interpreter: each sub-interpreter
%% context has a sys.path of its own; other contexts share the main one's.
everywhere(Code, Sites) ->
    py:eval_everywhere(Code, #{ds => Sites}).

%% Runs an executable, collecting its output, within Timeout.
run(Exe, Args, Timeout) ->
    Port = open_port({spawn_executable, Exe},
                     [{args, Args}, exit_status, stderr_to_stdout, binary, hide]),
    Deadline = case Timeout of infinity -> infinity; T -> erlang:monotonic_time(millisecond) + T end,
    collect(Port, Deadline, []).

collect(Port, Deadline, Acc) ->
    Left = case Deadline of infinity -> infinity; D -> max(0, D - erlang:monotonic_time(millisecond)) end,
    receive
        {Port, {data, Data}} -> collect(Port, Deadline, [Data | Acc]);
        {Port, {exit_status, 0}} -> {ok, iolist_to_binary(lists:reverse(Acc))};
        {Port, {exit_status, S}} -> {error, {S, iolist_to_binary(lists:reverse(Acc))}}
    after Left ->
        case erlang:port_info(Port, os_pid) of
            {os_pid, OsPid} -> os:cmd("kill -9 " ++ integer_to_list(OsPid));
            undefined -> ok
        end,
        catch port_close(Port),
        {error, timeout}
    end.

is_text(T) -> is_binary(T) orelse (is_list(T) andalso io_lib:printable_unicode_list(T)).

to_list(B) when is_binary(B) -> unicode:characters_to_list(B);
to_list(A) when is_atom(A) -> atom_to_list(A);
to_list(L) when is_list(L) -> unicode:characters_to_list(L).
