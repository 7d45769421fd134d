"""Run inside Blender (``blender -b --factory-startup --python read_bones.py -- KIND FILE FRAMES OUT.json``):
import a BVH (KIND ``bvh``) or glTF (``gltf``) file with Blender's own importer and write every armature's bone
heads, world space in Blender's axes (z up, metres), at the given frames, to a JSON file that pytest compares.

FRAMES: comma-separated BVH frame numbers (0-based) for ``bvh``; for ``gltf``, comma-separated times in seconds.
"""

import builtins
import json
import sys

import bpy

kind, path, frames_arg, out_path = sys.argv[sys.argv.index("--") + 1:][:4]

if kind == "bvh":
    # Debian's Blender 3.4 runs its BVH importer on Python 3.11, where the importer's open(path, 'rU') raises
    # ('U' was removed from open's modes): drop the 'U' while the importer runs
    real_open = builtins.open

    def open_without_u(file, mode="r", *args, **kwargs):
        return real_open(file, mode.replace("U", "") if isinstance(mode, str) else mode, *args, **kwargs)

    builtins.open = open_without_u
    try:
        # metres in Blender (the file is in cm); the default axes turn the BVH's y up into Blender's z up
        bpy.ops.import_anim.bvh(filepath=path, global_scale=0.01, axis_forward="-Z", axis_up="Y",
                                rotate_mode="NATIVE", frame_start=1, use_fps_scale=False,
                                update_scene_fps=False, update_scene_duration=True)
    finally:
        builtins.open = real_open
    wanted = [int(f) for f in frames_arg.split(",")]
    scene_frames = [(f + 1, 0.0) for f in wanted]  # BVH frame 0 is Blender frame 1 (frame_start)
else:
    # Debian's Blender 3.4 glTF importer uses np.bool, which numpy 1.24 (Debian's python3-numpy) removed: give
    # the alias back while it runs
    import numpy

    if "bool" not in numpy.__dict__:
        numpy.bool = numpy.bool_
    scene = bpy.context.scene
    bpy.ops.import_scene.gltf(filepath=path)
    fps = scene.render.fps  # the importer's: it keys time t at t * render.fps (fps_base not applied)
    wanted = [float(t) for t in frames_arg.split(",")]
    # frame_set takes a whole frame and a subframe
    scene_frames = []
    for t in wanted:
        frame = t * fps
        whole = int(frame // 1)
        scene_frames.append((whole, frame - whole))

scene = bpy.context.scene
armatures = [o for o in scene.objects if o.type == "ARMATURE"]
out = {"fps": scene.render.fps / scene.render.fps_base, "frames": wanted, "armatures": {}}
for arm in armatures:
    out["armatures"][arm.name] = {pb.name: [] for pb in arm.pose.bones}
for frame, sub in scene_frames:
    scene.frame_set(frame, subframe=sub)
    for arm in armatures:
        for pb in arm.pose.bones:
            out["armatures"][arm.name][pb.name].append(list(arm.matrix_world @ pb.head))
with open(out_path, "w") as f:
    json.dump(out, f)
