package io.sluice.format.megatron;

import io.sluice.format.DatasetFormatException;
import io.sluice.format.FileStamp;
import io.sluice.format.IndexProgress;
import io.sluice.format.IndexReport;
import io.sluice.format.Manifest;
import io.sluice.format.SampleSource;
import io.sluice.format.ShardEntry;
import io.sluice.format.ShardFormat;
import io.sluice.read.ReadBackend;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.stream.Stream;

/**
 * {@code megatron}: Megatron-LM / NeMo indexed datasets, {@code NAME.bin} + {@code NAME.idx} pairs
 * (layout in {@link MegatronIdx}). A sample is a sequence; shards are the pairs in file-name order,
 * the {@code .bin} the shard and the {@code .idx} its companion, which is itself the sample index,
 * so no index file of Sluice's own is written. All shards share one dtype. No options.
 *
 * <p>Re-indexing skips the scan of a shard whose {@code .bin} and {@code .idx} stamps equal those
 * of the manifest on disk: it was fully checked when they were recorded.
 */
public final class MegatronFormat implements ShardFormat {
  public static final String NAME = "megatron";
  static final String BIN = ".bin";
  static final String IDX = ".idx";

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public IndexReport index(Path dir, Map<String, String> options, IndexProgress progress)
      throws IOException {
    if (!options.isEmpty()) {
      throw new IllegalArgumentException(
          "option "
              + new TreeSet<>(options.keySet()).first()
              + " is not an option of format megatron (it has none: the dtype comes from the"
              + " .idx headers)");
    }
    List<String> stems = pairs(dir);
    Previous previous = Previous.read(dir);
    List<ShardEntry> shards = new ArrayList<>(stems.size());
    MegatronDtype dtype = null;
    Path dtypeFrom = null;
    long bytes = 0;
    for (int i = 0; i < stems.size(); i++) {
      String stem = stems.get(i);
      FileStamp bin = FileStamp.of(dir, stem + BIN);
      FileStamp idx = FileStamp.of(dir, stem + IDX);
      ShardEntry entry = previous.unchanged(bin, idx);
      MegatronDtype shardDtype;
      if (entry != null) {
        shardDtype = previous.dtype;
      } else {
        Path idxPath = dir.resolve(idx.path());
        try (Arena arena = Arena.ofConfined()) {
          MegatronIdx index = MegatronIdx.map(idxPath, idx.lengthBytes(), arena);
          index.checkEntries(dir.resolve(bin.path()), bin.lengthBytes());
          shardDtype = index.dtype();
          entry = ShardEntry.of(bin, index.sequenceCount(), List.of(idx));
        }
      }
      if (dtype == null) {
        dtype = shardDtype;
        dtypeFrom = dir.resolve(idx.path());
      } else if (shardDtype != dtype) {
        throw new DatasetFormatException(
            dir.resolve(idx.path()),
            MegatronIdx.DTYPE_OFFSET,
            "dtype="
                + shardDtype.wireName()
                + " differs from dtype="
                + dtype.wireName()
                + " of "
                + dtypeFrom.getFileName()
                + ": all shards of a dataset must share one dtype");
      }
      shards.add(entry);
      bytes += bin.lengthBytes() + idx.lengthBytes();
      progress.shardIndexed(i + 1, stems.size(), bytes);
    }
    Manifest fresh = new Manifest(NAME, Map.of("dtype", dtype.wireName()), shards);
    if (fresh.totalSamples() == 0) {
      throw new DatasetFormatException(
          dir, -1, "no sequence to serve: every .idx has sequence count 0");
    }
    boolean reused = Manifest.sameAsOnDisk(dir, fresh);
    if (!reused) {
      fresh.write(dir);
    }
    return new IndexReport(fresh, reused, List.of());
  }

  /** The stems of the {@code NAME.bin} + {@code NAME.idx} pairs of {@code dir}, sorted. */
  static List<String> pairs(Path dir) throws IOException {
    if (!Files.isDirectory(dir)) {
      throw new DatasetFormatException(dir, -1, "not a directory");
    }
    TreeSet<String> bins = new TreeSet<>();
    TreeSet<String> idxs = new TreeSet<>();
    try (Stream<Path> s = Files.list(dir)) {
      for (Path p : (Iterable<Path>) s::iterator) {
        String name = p.getFileName().toString();
        if (!Files.isRegularFile(p)) {
          continue;
        }
        if (name.endsWith(BIN)) {
          bins.add(name.substring(0, name.length() - BIN.length()));
        } else if (name.endsWith(IDX)) {
          idxs.add(name.substring(0, name.length() - IDX.length()));
        }
      }
    }
    // Report the first unpaired file in name order, whichever kind it is.
    TreeSet<String> all = new TreeSet<>(bins);
    all.addAll(idxs);
    for (String stem : all) {
      if (!idxs.contains(stem)) {
        throw new DatasetFormatException(
            dir.resolve(stem + BIN),
            -1,
            "no " + stem + IDX + " beside it: a Megatron shard is a NAME.bin + NAME.idx pair");
      }
      if (!bins.contains(stem)) {
        throw new DatasetFormatException(
            dir.resolve(stem + IDX),
            -1,
            "no " + stem + BIN + " beside it: a Megatron shard is a NAME.bin + NAME.idx pair");
      }
    }
    if (all.isEmpty()) {
      throw new DatasetFormatException(dir, -1, "no NAME.bin + NAME.idx pairs in this folder");
    }
    return List.copyOf(all);
  }

  @Override
  public SampleSource open(Path dir, Manifest manifest, ReadBackend backend) throws IOException {
    MegatronDtype dtype;
    try {
      dtype = MegatronDtype.parse(manifest.param("dtype"));
    } catch (RuntimeException e) {
      throw new DatasetFormatException(
          dir.resolve(Manifest.FILE_NAME), -1, "bad megatron params: " + e.getMessage(), e);
    }
    manifest.checkUnchanged(dir);
    return new MegatronSource(dir, manifest, dtype, backend);
  }

  /** The shards of the manifest already on disk, if it is a megatron one, by path. */
  private record Previous(MegatronDtype dtype, Map<String, ShardEntry> shards) {
    static final Previous NONE = new Previous(null, Map.of());

    static Previous read(Path dir) {
      if (!Files.exists(dir.resolve(Manifest.FILE_NAME))) {
        return NONE;
      }
      try {
        Manifest m = Manifest.read(dir);
        if (!m.format().equals(NAME)) {
          return NONE;
        }
        MegatronDtype dtype = MegatronDtype.parse(m.params().getOrDefault("dtype", ""));
        Map<String, ShardEntry> byPath = new HashMap<>();
        for (ShardEntry s : m.shards()) {
          byPath.put(s.path(), s);
        }
        return new Previous(dtype, byPath);
      } catch (RuntimeException e) {
        return NONE; // a damaged or foreign manifest is simply replaced
      }
    }

    /** The recorded entry when both files still have the recorded stamps, else null. */
    ShardEntry unchanged(FileStamp bin, FileStamp idx) {
      ShardEntry old = shards.get(bin.path());
      if (old == null || !old.stamp().equals(bin) || !old.companions().equals(List.of(idx))) {
        return null;
      }
      return old;
    }
  }
}
