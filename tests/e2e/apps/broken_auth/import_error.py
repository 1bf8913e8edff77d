import no_such_module_for_aegra_tests  # noqa: F401

auth = None
