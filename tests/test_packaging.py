from importlib import metadata

TOP_LEVEL = ["foundation", "schemas", "taxonomy", "workers", "validators", "dedup", "corpus", "flows", "cli"]


def test_no_other_distribution_provides_our_top_level_packages():
    providers = metadata.packages_distributions()
    for name in TOP_LEVEL:
        assert set(providers.get(name, [])) == {"populace"}, f"{name} is provided by {providers.get(name)}"


def test_console_script_is_declared():
    scripts = [e for e in metadata.entry_points(group="console_scripts") if e.name == "populace"]
    assert [e.value for e in scripts] == ["cli.main:main"]
