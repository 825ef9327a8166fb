package io.sluice.cli;

import picocli.CommandLine.Command;

/**
 * Listed for {@code --help}; the launcher script runs the tests itself (Maven, then pytest), so
 * this is reached only when the CLI is started without the launcher.
 */
@Command(
    name = "test",
    mixinStandardHelpOptions = true,
    description = {
      "Run every test: Java unit tests (*Test), integration tests (*IT), then the Python client"
          + " tests in .venv. Handled by the ./sluice launcher at the repository root.",
      "  --hw   also run the hardware tests (hw-tests/) and fail where the hardware is missing"
    })
final class TestCommand implements Runnable {
  @Override
  public void run() {
    throw new UsageException("run './sluice test' from the repository root (it needs Maven)");
  }
}
