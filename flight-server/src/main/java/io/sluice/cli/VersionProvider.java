package io.sluice.cli;

import picocli.CommandLine;

/** Reports the build's version from the jar manifest, and the JVM it runs on. */
final class VersionProvider implements CommandLine.IVersionProvider {
  @Override
  public String[] getVersion() {
    String v = SluiceMain.class.getPackage().getImplementationVersion();
    return new String[] {
      "sluice " + (v == null ? "dev" : v),
      "java " + Runtime.version() + " (" + System.getProperty("java.vendor") + ")"
    };
  }
}
