%% Virtual environments: made with the linked Python, a package installed from a
%% wheel built here (no network), active in every context, now and later.
-module(py_venv_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-compile([export_all, nowarn_export_all]).

all() ->
    [{group, venv}].

groups() ->
    [{venv, [sequence], [venv_from_a_local_wheel, same_requirements_install_nothing,
                         failed_install_keeps_the_active_one, requirements_file, not_a_venv, deactivate]}].

init_per_suite(Config) ->
    Config1 = py_test_util:start_app(Config, #{contexts => 2}),
    Priv = ?config(priv_dir, Config1),
    Wheels = filename:join(Priv, "wheels"),
    ok = filelib:ensure_dir(filename:join(Wheels, "x")),
    {ok, Whl} = build_wheel(Wheels),
    ct:pal("wheel: ~ts", [Whl]),
    [{wheels, Wheels}, {venv, filename:join(Priv, "venv")} | Config1].

end_per_suite(_Config) ->
    _ = py:deactivate_venv(),
    py_test_util:stop_app().

init_per_group(_, Config) -> Config.
end_per_group(_, _Config) -> ok.

%% A wheel of a one-module package, built with zipfile (no setuptools, no network).
build_wheel(Dir) ->
    ok = py:exec(py:context(main), <<"
import zipfile, os, base64, hashlib
def build_wheel(d, name, version):
    fn = os.path.join(d, name + '-' + version + '-py3-none-any.whl')
    info = name + '-' + version + '.dist-info/'
    files = {name + '/__init__.py': 'VALUE = ' + repr('from the venv') + '\\n',
             info + 'METADATA': 'Metadata-Version: 2.1\\nName: ' + name + '\\nVersion: ' + version + '\\n',
             info + 'WHEEL': 'Wheel-Version: 1.0\\nGenerator: erlang_python-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n'}
    lines = []
    with zipfile.ZipFile(fn, 'w') as z:
        for path, text in files.items():
            data = text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()
            lines.append(path + ',sha256=' + digest + ',' + str(len(data)))
            z.writestr(path, data)
        lines.append(info + 'RECORD,,')
        z.writestr(info + 'RECORD', '\\n'.join(lines) + '\\n')
    return fn
">>),
    py:call(py:context(main), '__main__', build_wheel, [list_to_binary(Dir), <<"ep_tinypkg">>, <<"0.1">>]).

offline(Config) ->
    #{install_args => ["--no-index", "--find-links", ?config(wheels, Config)]}.

interpreters() ->
    [py:context(main) | py_context_router:contexts()].

venv_from_a_local_wheel(Config) ->
    Venv = ?config(venv, Config),
    {T, ok} = timer:tc(fun() -> py:ensure_venv(Venv, ["ep_tinypkg"], offline(Config)) end),
    ct:pal("venv created and package installed in ~p ms", [T div 1000]),
    {ok, #{active := true, path := Path, site_packages := [_ | _]}} = py:venv_info(),
    ?assertEqual(list_to_binary(Venv), Path),
    [?assertEqual({ok, <<"from the venv">>}, py:eval(C, <<"__import__('ep_tinypkg').VALUE">>)) || C <- interpreters()],
    %% ahead of the base Python's site-packages, so that what the venv pins
    %% wins over the base's copy (it came after them, and lost)
    [?assertEqual({ok, true}, venv_first(C)) || C <- interpreters()],
    %% contexts started afterwards have it too
    {ok, _} = py_context_router:start(#{contexts => 3}),
    ?assertEqual({ok, <<"from the venv">>}, py:eval(py:context(3), <<"__import__('ep_tinypkg').VALUE">>)),
    ?assertEqual({ok, true}, venv_first(py:context(3))),
    {ok, _} = py_context_router:start(#{contexts => 2}).

%% Whether the active venv's site-packages come before every base
%% site-packages directory on `Ctx''s sys.path.
venv_first(Ctx) ->
    {ok, #{site_packages := Sites}} = py:venv_info(),
    py:eval(Ctx, <<"(lambda site, sys, ds: max(sys.path.index(d) for d in ds) < "
                   "min([sys.path.index(p) for p in site.getsitepackages() if p in sys.path] + [len(sys.path)]))"
                   "(__import__('site'), __import__('sys'), ds)">>, #{ds => Sites}).

%% The same requirements again: nothing is installed (the wheels are gone, so
%% an install would fail).
same_requirements_install_nothing(Config) ->
    Wheels = ?config(wheels, Config),
    Hidden = Wheels ++ ".hidden",
    ok = file:rename(Wheels, Hidden),
    try
        ?assertEqual(ok, py:ensure_venv(?config(venv, Config), ["ep_tinypkg"], offline(Config)))
    after
        ok = file:rename(Hidden, Wheels)
    end.

failed_install_keeps_the_active_one(Config) ->
    Other = filename:join(?config(priv_dir, Config), "venv2"),
    ?assertMatch({error, {install_failed, _}},
                 py:ensure_venv(Other, ["ep_no_such_package_anywhere"], offline(Config))),
    {ok, #{active := true, path := Path}} = py:venv_info(),
    ?assertEqual(list_to_binary(?config(venv, Config)), Path),
    ?assertEqual({ok, <<"from the venv">>}, py:eval(<<"__import__('ep_tinypkg').VALUE">>)).

requirements_file(Config) ->
    File = filename:join(?config(priv_dir, Config), "requirements.txt"),
    ok = file:write_file(File, <<"ep_tinypkg==0.1\n">>),
    ?assertEqual(ok, py:ensure_venv(?config(venv, Config), File, offline(Config))),
    ?assertMatch({error, {bad_argument, _}}, py:ensure_venv(?config(venv, Config), [42], offline(Config))),
    ?assertMatch({error, {bad_argument, _}}, py:ensure_venv(?config(venv, Config), "/no/such/requirements.txt", #{})).

not_a_venv(Config) ->
    Dir = ?config(priv_dir, Config),
    ?assertEqual({error, {not_a_venv, Dir}}, py:activate_venv(Dir)),
    %% a venv of another Python version: its site-packages are for that one
    Foreign = filename:join(Dir, "foreign"),
    ok = filelib:ensure_dir(filename:join([Foreign, "lib", "python2.7", "site-packages", "x"])),
    ok = file:write_file(filename:join(Foreign, "pyvenv.cfg"), <<"home = /nowhere\nversion = 2.7.18\n">>),
    ?assertEqual({error, {incompatible_venv, Foreign}}, py:activate_venv(Foreign)),
    {ok, #{active := true}} = py:venv_info().

deactivate(_Config) ->
    {ok, #{site_packages := Sites}} = py:venv_info(),
    ok = py:deactivate_venv(),
    ?assertEqual({ok, #{active => false}}, py:venv_info()),
    [?assertEqual({ok, false}, py:eval(C, <<"any(d in __import__('sys').path for d in ds)">>, #{ds => Sites}))
     || C <- interpreters()],
    %% a context started now does not get it either
    {ok, _} = py_context_router:start(#{contexts => 2}),
    ?assertEqual({ok, false}, py:eval(py:context(2), <<"any(d in __import__('sys').path for d in ds)">>, #{ds => Sites})),
    ?assertEqual(ok, py:deactivate_venv()).
