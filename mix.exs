# The repository as a mix dependency: {:erlang_python, git: Url, branch: "main"}.
# The OTP application's Erlang sources are in erlang/src; the NIF is built from
# the crate at the repository root into the application's priv/ by the compiler below (cargo and
# a Python with headers needed; PYTHON_CONFIG or PYTHON pick the Python).
defmodule Mix.Tasks.Compile.ErlangPythonNif do
  @moduledoc false
  use Mix.Task.Compiler

  @impl true
  def run(_args) do
    # straight into the application's priv/ under _build (the NIF loads from there)
    priv = Path.join(Mix.Project.app_path(), "priv")
    case System.cmd("bash", ["scripts/build-nif", priv], stderr_to_stdout: true, into: IO.stream(:stdio, :line)) do
      {_, 0} -> {:ok, []}
      {_, _} -> Mix.raise("erlang_python: building the NIF failed (see above)")
    end
  end
end

defmodule ErlangPython.MixProject do
  use Mix.Project

  def project do
    [
      app: :erlang_python,
      version: "0.2.0",
      language: :erlang,
      erlc_paths: ["erlang/src"],
      compilers: [:erlang_python_nif, :erlang, :app],
      deps: []
    ]
  end

  # As erlang/src/erlang_python.app.src says.
  def application do
    [
      mod: {:erlang_python_app, []},
      registered: [:erlang_python_sup],
      extra_applications: [:logger],
      env: [num_executors: 4, call_timeout: 30000]
    ]
  end
end
