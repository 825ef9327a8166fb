package io.sluice.cli;

import java.io.BufferedWriter;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** Entry point of the {@code sluice} CLI; the only place that exits the process. */
@Command(
    name = "sluice",
    mixinStandardHelpOptions = true,
    versionProvider = VersionProvider.class,
    description =
        "Sluice: a per-node data loader for GPU training, serving batches over Arrow Flight.",
    subcommands = {
      DemoCommand.class,
      ServeCommand.class,
      DatasetCommand.class,
      PlanCommand.class,
      ReadCommand.class,
      StatsCommand.class,
      BenchCommand.class,
      TestCommand.class,
      CommandLine.HelpCommand.class
    })
public final class SluiceMain implements Runnable {
  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    spec.commandLine().usage(spec.commandLine().getOut());
  }

  /** Builds the command line with Sluice's error handling: one line per mistake, exit 2. */
  public static CommandLine commandLine() {
    CommandLine cl = new CommandLine(new SluiceMain());
    cl.setParameterExceptionHandler(
        (ex, args) -> {
          PrintWriter err = ex.getCommandLine().getErr();
          String cmd = ex.getCommandLine().getCommandSpec().qualifiedName();
          String what = ex.getMessage();
          if (ex instanceof CommandLine.UnmatchedArgumentException u
              && ex.getCommandLine().getCommandSpec().subcommands().size() > 0
              && !u.getUnmatched().isEmpty()
              && !u.getUnmatched().get(0).startsWith("-")) {
            what = "unknown command '" + u.getUnmatched().get(0) + "'";
          }
          err.println(cmd + ": " + what + " (see '" + cmd + " --help')");
          err.flush();
          return CommandLine.ExitCode.USAGE;
        });
    cl.setExecutionExceptionHandler(
        (ex, commandLine, parseResult) -> {
          PrintWriter err = commandLine.getErr();
          if (ex instanceof UsageException || ex instanceof io.sluice.config.ConfigException) {
            err.println(commandLine.getCommandSpec().qualifiedName() + ": " + ex.getMessage());
            err.flush();
            return CommandLine.ExitCode.USAGE;
          }
          err.println(commandLine.getCommandSpec().qualifiedName() + ": " + describe(ex));
          err.flush();
          if (Boolean.getBoolean("sluice.debug")) {
            ex.printStackTrace(err);
          }
          return CommandLine.ExitCode.SOFTWARE;
        });
    return cl;
  }

  static String describe(Throwable ex) {
    if (ex instanceof org.apache.arrow.flight.FlightRuntimeException f) {
      return f.status().code() + ": " + f.status().description();
    }
    String m = ex.getMessage();
    return (m == null || m.isBlank()) ? ex.getClass().getSimpleName() : m;
  }

  public static void main(String[] args) {
    CommandLine cl = commandLine();
    // Buffered: `plan` can print millions of ids, and picocli's default writer flushes every line.
    PrintWriter out =
        new PrintWriter(
            new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8), 1 << 16),
            false);
    cl.setOut(out);
    int status = cl.execute(args);
    out.flush();
    System.exit(status);
  }
}
