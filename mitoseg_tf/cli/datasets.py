"""``mitoseg datasets list | inspect NAME --data-dir DIR | prepare NAME --data-dir DIR``."""

import os

from mitoseg_tf import defaults


def add_parser(sub):
    p = sub.add_parser("datasets", help="list, inspect or prepare the public datasets the package reads")
    actions = p.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="the dataset names and the layout each reads")
    for action, text in (
        ("inspect", "counts, figures per image, class balance and a PNG grid of samples"),
        ("prepare", "read, check and write the dataset's TFDS records once (progress bar)"),
    ):
        a = actions.add_parser(action, help=text)
        a.add_argument("name", help="dataset name (see `mitoseg datasets list`)")
        a.add_argument("--data-dir", required=True, help="folder holding the files you obtained")
        a.add_argument("--radius-um", type=float, default=None, help="disk radius (microns) for point labels")
        a.add_argument("--refine-masks", action="store_true", help="keep only hematoxylin-dense pixels in disks")
        if action == "inspect":
            a.add_argument("--out", default=None, help="PNG of sample images (default: NAME_samples.png)")
            a.add_argument(
                "--max-images",
                type=int,
                default=defaults.DEFAULT_INSPECT_MAX_IMAGES,
                help="images decoded for pixel statistics",
            )
        else:
            a.add_argument("--prepared-dir", default=None, help="where TFDS writes the records")


def run(args):
    from mitoseg_tf.data.formats import FORMATS, get_format

    if args.action == "list":
        print("| name | what | layout read from --data-dir |")
        print("|---|---|---|")
        for name, fmt in FORMATS.items():
            print(f"| {name} | {fmt.DESCRIPTION} | {fmt.EXPECTED} |")
        return
    get_format(args.name)
    mask_options = dict(refine=args.refine_masks)
    if args.radius_um is not None:
        mask_options["radius_um"] = args.radius_um
    if args.action == "inspect":
        from mitoseg_tf.data.inspection import format_summary, sample_grid, summarise

        print(format_summary(summarise(args.name, args.data_dir, max_images=args.max_images, **mask_options)))
        out = args.out or f"{args.name}_samples.png"
        sample_grid(args.name, args.data_dir, out, **mask_options)
        print(f"sample grid: {os.path.abspath(out)}")
        return
    from mitoseg_tf.data.builders import available_splits, prepare

    builder = prepare(args.name, args.data_dir, prepared_dir=args.prepared_dir, **mask_options)
    sizes = {s: builder.info.splits[s].num_examples for s in available_splits(builder)}
    print(f"{args.name} prepared in {builder.data_dir}: " + ", ".join(f"{k} {v}" for k, v in sizes.items()))
