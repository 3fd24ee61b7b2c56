defmodule ElixirExample.MixProject do
  use Mix.Project

  def project do
    [app: :elixir_example, version: "0.1.0", elixir: "~> 1.14", deps: deps()]
  end

  def application, do: [extra_applications: [:logger]]

  # In your project: {:erlang_python, git: "https://.../erlang_python.git", branch: "main"}
  defp deps, do: [{:erlang_python, path: "../.."}]
end
