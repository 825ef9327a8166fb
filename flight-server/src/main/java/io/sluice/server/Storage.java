package io.sluice.server;

import io.sluice.config.DaemonConfig;
import io.sluice.format.Formats;
import io.sluice.read.CountingReadBackend;
import io.sluice.read.ReadBackends;
import io.sluice.s3.S3FileSystem;
import io.sluice.s3.S3ReadBackend;
import io.sluice.s3.S3Settings;
import io.sluice.s3.S3Stats;
import io.sluice.s3.S3Store;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.logging.Logger;

/**
 * Where the daemon's datasets live and the read backends that reach them: the local backend the
 * config chooses (io_uring or posix) for folders, and, once a dataset is in an object store, one S3
 * client shared by every such dataset. Each backend counts what it reads, for the metrics.
 */
final class Storage implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(Storage.class.getName());

  private final CountingReadBackend local;
  private final S3FileSystem s3fs; // null without s3:// datasets
  private final CountingReadBackend s3;

  private Storage(CountingReadBackend local, S3FileSystem s3fs, CountingReadBackend s3) {
    this.local = local;
    this.s3fs = s3fs;
    this.s3 = s3;
  }

  /** The backends {@code config} needs; the S3 client only when a dataset is in a bucket. */
  static Storage open(DaemonConfig config, Map<String, String> env) {
    CountingReadBackend local = new CountingReadBackend(ReadBackends.select(config.backend()));
    if (!config.usesS3()) {
      return new Storage(local, null, null);
    }
    try {
      S3Settings settings = config.s3().resolve(env);
      LOG.info(
          () ->
              "s3: endpoint="
                  + (settings.endpoint() == null ? "aws" : settings.endpoint())
                  + " region="
                  + settings.region()
                  + " path_style="
                  + settings.usePathStyle()
                  + " max_in_flight="
                  + settings.maxInFlight());
      S3FileSystem fs = S3FileSystem.open(S3Store.open(settings));
      return new Storage(local, fs, new CountingReadBackend(new S3ReadBackend(fs)));
    } catch (RuntimeException e) {
      local.close();
      throw e;
    }
  }

  /** Opens {@code d} with the backend for where it lives; its manifest is read and checked. */
  ServedDataset open(DaemonConfig.Dataset d) throws IOException {
    Path dir = d.isS3() ? s3fs.path(d.location()) : d.localPath();
    CountingReadBackend backend = d.isS3() ? s3 : local;
    return ServedDataset.of(d.name(), dir, Formats.open(dir, backend), backend);
  }

  /** Every backend in use: the local one, then s3 when used. */
  List<CountingReadBackend> backends() {
    List<CountingReadBackend> out = new ArrayList<>();
    out.add(local);
    if (s3 != null) {
      out.add(s3);
    }
    return out;
  }

  /** The S3 client's counts, or null without s3:// datasets. */
  S3Stats s3Stats() {
    return s3fs == null ? null : s3fs.store().stats();
  }

  /** "io_uring", or "io_uring,s3" when some dataset is in a bucket. */
  String names() {
    return s3 == null ? local.name() : local.name() + "," + s3.name();
  }

  @Override
  public void close() {
    local.close();
    if (s3 != null) {
      s3.close();
      s3fs.close();
    }
  }
}
