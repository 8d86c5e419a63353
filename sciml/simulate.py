"""Write the trajectories of a :class:`~sciml.datasets.trajectory_generator.TrajectoryGenerator`
into a resumable trajectory file, one batch of samples at a time.

Sample ``i`` is drawn from ``sample_seed(root_seed, i)`` whatever the batch size, so a
resumed or re-batched run writes the same data. A batch that diverges stops the run with
the generator's message (sample and step); the batches staged before it stay, and
``--resume`` continues after the settings are fixed.

Examples
--------
>>> from sciml.simulate import simulate_dataset                                # doctest: +SKIP
>>> simulate_dataset(get_trajectory_generator("navier-stokes")(), 8, "ns.nc")  # doctest: +SKIP
'ns.nc'
"""

from __future__ import annotations

import time

from sciml.dataset_file import sample_seed
from sciml.errors import SciMLError
from sciml.trajectory_file import StagedTrajectoryWriter


def simulate_dataset(generator, n_samples: int, out, *, seed: int = 0, batch_size: int = 8, device=None,
                     resume: bool = False, overwrite: bool = False, progress: bool = False) -> str:
    """Simulate ``n_samples`` trajectories in batches and write them to ``out``; returns the path.

    Parameters
    ----------
    generator : TrajectoryGenerator
        What to simulate.
    n_samples, batch_size : int
        Samples in all, and per batch (one batched simulation each).
    out : str or os.PathLike
        The trajectory file; batches are staged in ``out + ".parts/"`` until complete.
    seed : int
        Root seed.
    device : str or torch.device, optional
        Where the simulation runs (default: the generator's choice, CPU here).
    resume, overwrite : bool
        Continue an interrupted run; replace a finished file.
    """
    for value, what in ((n_samples, "the number of samples (--n)"), (batch_size, "generate.batch_size")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SciMLError(f"{what} must be a positive integer, got {value!r}")
    meta = {"layout": generator.layout, "n_samples": n_samples, "batch_size": batch_size, "pde": generator.name,
            "pde_parameters": generator.parameters(), "generator_version": generator.version,
            "root_seed": seed, "metadata": generator.metadata()}
    coords = {k: [float(v) for v in vals] for k, vals in generator.coords().items()}
    meta.update({"coords": coords} if generator.layout == "grid" else {"time": coords["time"]})
    writer = StagedTrajectoryWriter(out, meta, resume=resume, overwrite=overwrite)
    for batch in writer.pending():
        samples = writer.batch_samples(batch)
        seeds = [sample_seed(seed, i) for i in samples]
        start = time.perf_counter()
        try:
            arrays = generator.simulate(seeds, device=device)
        except SciMLError as err:
            raise SciMLError(f"batch {batch} (samples {samples[0]}-{samples[-1]}): {err}; "
                             "the batches before it are kept: fix the settings and rerun with --resume") from None
        writer.write_batch(batch, arrays, seeds)
        if progress:
            print(f"batch {batch + 1}/{writer.n_batches}: {len(samples)} samples in "
                  f"{time.perf_counter() - start:.1f} s", flush=True)
    extra = generator.dataset_metadata(writer.read_staged)
    return writer.finalize(extra)
