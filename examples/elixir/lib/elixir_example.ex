defmodule ElixirExample do
  @moduledoc """
  erlang_python from Elixir: the `:py` module, as from Erlang. Run with
  `mix run -e ElixirExample.main`; each step checks its result.
  """

  defmodule Point do
    defstruct x: 0, y: 0
  end

  def main do
    {:ok, _} = Application.ensure_all_started(:erlang_python)

    # calls and eval; binaries are Python str, nil is None
    {:ok, 4.0} = :py.call(:math, :sqrt, [16])
    {:ok, 2} = :py.eval("1 + 1")
    {:ok, true} = :py.eval("x is None", %{x: nil})
    {:ok, "HELLO"} = :py.call(:builtins, :"str.upper", ["hello"])
    show("py.call(:math, :sqrt, [16])", {:ok, 4.0})

    # a struct is a map: it arrives as a dict, its __struct__ key included
    {:ok, keys} = :py.eval("sorted(p.keys())", %{p: %Point{x: 1, y: 2}})
    ["__struct__", "x", "y"] = keys
    {:ok, "Elixir.ElixirExample.Point"} = :py.eval("p['__struct__']", %{p: %Point{}})
    show("a %Point{} in Python: keys", keys)

    # a context of its own: names stay there
    ctx = :py.context(1)
    :ok = :py.exec(ctx, "def area(w, h):\n    return w * h\n")
    {:ok, 12} = :py.call(ctx, :__main__, :area, [3, 4])
    show("py.call(ctx, :__main__, :area, [3, 4])", {:ok, 12})

    # Python calling back into an Elixir function
    :ok = :py.register_function(:double, fn [x] -> x * 2 end)
    {:ok, 42} = :py.eval("erlang.call('double', 21)")
    show("erlang.call('double', 21) from Python", {:ok, 42})

    # an object kept by reference
    {:ok, d} = :py.call(ctx, :collections, :Counter, ["hello"], %{return: :ref})
    {:ok, [["l", 2]]} = :py.call_method(d, :most_common, [1]) |> then(fn {:ok, l} -> {:ok, Enum.map(l, &Tuple.to_list/1)} end)
    show("Counter('hello').most_common(1) by reference", :py.call_method(d, :most_common, [1]))

    # parallel calls over the contexts
    {:ok, results} = :py.parallel(for n <- 1..4, do: {:math, :factorial, [n]})
    [{:ok, 1}, {:ok, 2}, {:ok, 6}, {:ok, 24}] = results
    show("py.parallel(factorials)", results)

    IO.puts("elixir example: all checks passed")
  end

  defp show(what, result), do: IO.puts("  #{what} -> #{inspect(result)}")
end
