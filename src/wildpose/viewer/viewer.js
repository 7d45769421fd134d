// wildpose viewer: plays a result's people in the world frame (poses_world: metres, y up, the floor at y = 0).
// Data: the JSON header and the deflated blob written by wildpose/viewer/payload.py. THREE is the vendored
// three.js bundle (a global). window.wildposeViewer is the page's API, for tests and users' scripts.
(function () {
  'use strict';

  let resolveReady, rejectReady;
  const api = { ready: new Promise((resolve, reject) => { resolveReady = resolve; rejectReady = reject; }) };
  window.wildposeViewer = api;

  const $ = (id) => document.getElementById(id);

  function showMessage(text) {
    const box = $('message');
    box.textContent = text;
    box.hidden = false;
  }

  function base64Bytes(text) {
    text = text.trim();
    if (Uint8Array.fromBase64) return Uint8Array.fromBase64(text);
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  async function inflate(bytes) {
    // zlib format (Python's zlib.compress) is what DecompressionStream calls 'deflate'
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  const TYPED = { float64: Float64Array, float32: Float32Array, int32: Int32Array, int16: Int16Array,
    uint8: Uint8Array };
  const ROW_INTERPOLATED = 1, ROW_MISSING = 2;
  const HEAD = 10, BONE_RADIUS = 0.022, JOINT_RADIUS = 0.032, HEAD_RADIUS = 0.07;

  async function main() {
    const header = JSON.parse($('wildpose-header').textContent);
    if (header.format !== 'wildpose-viewer/1') throw new Error('unknown data format ' + header.format);
    const raw = await inflate(base64Bytes($('wildpose-data').textContent));
    if (raw.byteLength !== header.raw_bytes) throw new Error('the data is ' + raw.byteLength + ' bytes, expected ' + header.raw_bytes);
    const array = (name) => {
      const spec = header.arrays[name];
      return new TYPED[spec.dtype](raw.buffer, raw.byteOffset + spec.offset, spec.length);
    };
    const timestamps = array('timestamps'), frameIndex = array('frame_index'), rowFlags = array('row_flags');
    const pelvisMm = array('pelvis_mm'), offsetsMm = array('offsets_mm');
    const worldFromCamera = header.camera ? array('world_from_camera') : null;
    const N = header.num_rows, T = header.num_frames, P = header.track_ids.length, step = header.step_m;
    const bones = header.bones;
    if (T === 0) throw new Error('the result has no frames');

    // ---- the sparse layout: track p's rows are trackStart[p]..trackStart[p + 1], frames increasing
    const trackStart = new Int32Array(P + 1), rowTrack = new Int32Array(N);
    for (let p = 0; p < P; p++) {
      trackStart[p + 1] = trackStart[p] + header.track_lengths[p];
      rowTrack.fill(p, trackStart[p], trackStart[p + 1]);
    }
    // rows of each frame (a counting sort; rows are track-major, so a frame's rows come in track order)
    const frameStart = new Int32Array(T + 1);
    for (let i = 0; i < N; i++) frameStart[frameIndex[i] + 1]++;
    let maxPerFrame = 0;
    for (let t = 0; t < T; t++) {
      maxPerFrame = Math.max(maxPerFrame, frameStart[t + 1]);
      frameStart[t + 1] += frameStart[t];
    }
    const frameRows = new Int32Array(N), fill = frameStart.slice(0, T);
    for (let i = 0; i < N; i++) frameRows[fill[frameIndex[i]]++] = i;
    const trackOfId = new Map(header.track_ids.map((id, p) => [id, p]));

    // joint j of row i in metres; the rounded pelvis plus the joint's offset is the rounded joint, exactly
    function joint(i, j, out, k) {
      let x = pelvisMm[i], y = pelvisMm[N + i], z = pelvisMm[2 * N + i];
      if (j > 0) {
        const c = (j - 1) * 3;
        x += offsetsMm[c * N + i]; y += offsetsMm[(c + 1) * N + i]; z += offsetsMm[(c + 2) * N + i];
      }
      out[k] = x * step; out[k + 1] = y * step; out[k + 2] = z * step;
    }
    function rowAt(p, t) { // binary search of track p's frames
      let lo = trackStart[p], hi = trackStart[p + 1] - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (frameIndex[mid] === t) return mid;
        if (frameIndex[mid] < t) lo = mid + 1; else hi = mid - 1;
      }
      return -1;
    }
    function frameAtTime(seconds) { // the last frame shown at or before `seconds`
      let lo = 0, hi = T - 1;
      const target = seconds + 1e-4; // a seek to a frame's own timestamp lands on that frame
      if (target < timestamps[0]) return 0;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (timestamps[mid] <= target) lo = mid; else hi = mid - 1;
      }
      return lo;
    }

    // ---- the scene
    const canvas = $('canvas'), pane = $('three-pane');
    let renderer;
    try {
      renderer = new THREE.WebGLRenderer({ canvas, antialias: true });
    } catch (err) {
      throw new Error('this browser gives no WebGL (' + err.message + '): the 3D view cannot be drawn');
    }
    renderer.setPixelRatio(window.devicePixelRatio || 1);
    const scene = new THREE.Scene();
    scene.background = new THREE.Color('#16181d');
    const view = new THREE.PerspectiveCamera(50, 1, 0.05, 2000);
    const controls = new THREE.OrbitControls(view, canvas);
    controls.enableDamping = false;
    controls.screenSpacePanning = true;

    // the extent of everyone's pelvis on the floor, for the grid and the first view
    let minX = Infinity, maxX = -Infinity, minZ = Infinity, maxZ = -Infinity, sumX = 0, sumZ = 0, seen = 0;
    for (let i = 0; i < N; i++) {
      if (rowFlags[i] & ROW_MISSING) continue;
      const x = pelvisMm[i] * step, z = pelvisMm[2 * N + i] * step;
      minX = Math.min(minX, x); maxX = Math.max(maxX, x); minZ = Math.min(minZ, z); maxZ = Math.max(maxZ, z);
      sumX += x; sumZ += z; seen++;
    }
    const cam = header.camera;
    if (!seen) { minX = minZ = -1; maxX = maxZ = 1; }
    if (cam) {
      minX = Math.min(minX, cam.position[0]); maxX = Math.max(maxX, cam.position[0]);
      minZ = Math.min(minZ, cam.position[2]); maxZ = Math.max(maxZ, cam.position[2]);
    }
    const centre = new THREE.Vector3(seen ? sumX / seen : 0, 0.9, seen ? sumZ / seen : 0);
    const span = Math.max(maxX - minX, maxZ - minZ, 2);
    const gridSize = 2 * Math.ceil(span / 2 + 2);
    const grid = new THREE.GridHelper(gridSize, gridSize, 0x5a5f6a, 0x33363d);
    grid.position.set(Math.round((minX + maxX) / 2), 0, Math.round((minZ + maxZ) / 2));
    scene.add(grid);

    const trackColor = header.track_colors.map((c) => new THREE.Color(c));
    const visible = new Uint8Array(P).fill(1);

    // people: one instanced mesh of bones and one of joints for everyone drawn in a frame (one draw call each)
    const capacity = Math.max(1, maxPerFrame);
    const bonesMesh = new THREE.InstancedMesh(new THREE.CylinderGeometry(1, 1, 1, 8, 1),
      new THREE.MeshBasicMaterial(), capacity * bones.length);
    const jointsMesh = new THREE.InstancedMesh(new THREE.SphereGeometry(1, 12, 8),
      new THREE.MeshBasicMaterial(), capacity * 17);
    for (const mesh of [bonesMesh, jointsMesh]) {
      mesh.frustumCulled = false; // instances move every frame; the mesh's bounds are not kept
      mesh.count = 0;
      mesh.setColorAt(0, new THREE.Color());
      scene.add(mesh);
    }

    // trajectories: each track's pelvis on the floor, one line per track (hidden with its track)
    const trajectories = new THREE.Group();
    const trackLines = [];
    for (let p = 0; p < P; p++) {
      const points = [];
      for (let i = trackStart[p]; i < trackStart[p + 1]; i++) {
        if (rowFlags[i] & ROW_MISSING) continue;
        points.push(pelvisMm[i] * step, 0.004, pelvisMm[2 * N + i] * step);
      }
      const geometry = new THREE.BufferGeometry();
      geometry.setAttribute('position', new THREE.Float32BufferAttribute(points, 3));
      const line = new THREE.Line(geometry, new THREE.LineBasicMaterial({ color: trackColor[p], transparent: true,
        opacity: 0.55 }));
      trackLines.push(line);
      trajectories.add(line);
    }
    scene.add(trajectories);

    // the camera: a small frustum in camera axes (x right, y down, z forward), placed by world_from_camera
    const cameraGroup = new THREE.Group();
    cameraGroup.matrixAutoUpdate = false;
    const cameraPole = new THREE.Group();
    if (cam) {
      const d = 0.5, [W, H] = header.image_size;
      const corner = (u, v) => [(u - cam.cx) / cam.fx * d, (v - cam.cy) / cam.fy * d, d];
      const c = [corner(0, 0), corner(W, 0), corner(W, H), corner(0, H)];
      const up = [[c[0][0] * 0.5, c[0][1] * 1.25, d], [0, c[0][1] * 1.6, d], [c[1][0] * 0.5, c[1][1] * 1.25, d]];
      const seg = [];
      for (let k = 0; k < 4; k++) seg.push(0, 0, 0, ...c[k], ...c[k], ...c[(k + 1) % 4]);
      seg.push(...up[0], ...up[1], ...up[1], ...up[2]); // a roof over the image's top edge: the camera's up
      const geometry = new THREE.BufferGeometry();
      geometry.setAttribute('position', new THREE.Float32BufferAttribute(seg, 3));
      cameraGroup.add(new THREE.LineSegments(geometry, new THREE.LineBasicMaterial({ color: 0xffffff })));
      cameraGroup.add(new THREE.Mesh(new THREE.SphereGeometry(0.05, 12, 8),
        new THREE.MeshBasicMaterial({ color: 0xffffff })));
      const pole = new THREE.BufferGeometry();
      pole.setAttribute('position', new THREE.Float32BufferAttribute([cam.position[0], 0, cam.position[2],
        ...cam.position], 3));
      cameraPole.add(new THREE.Line(pole, new THREE.LineDashedMaterial({ color: 0x888888, dashSize: 0.1,
        gapSize: 0.08 })));
      cameraPole.children[0].computeLineDistances();
      scene.add(cameraGroup, cameraPole);
    }
    function cameraMatrix(t) {
      const R = worldFromCamera.subarray(9 * t, 9 * t + 9), q = cam.position;
      return new THREE.Matrix4().set(R[0], R[1], R[2], q[0], R[3], R[4], R[5], q[1], R[6], R[7], R[8], q[2],
        0, 0, 0, 1);
    }

    // ---- the first view: from above, on the camera's side of the people, everyone and the camera in sight
    function resetView() {
      view.fov = 50;
      view.up.set(0, 1, 0);
      const side = cam ? new THREE.Vector3(cam.position[0] - centre.x, 0, cam.position[2] - centre.z)
        : new THREE.Vector3(0, 0, 1);
      if (side.lengthSq() < 1e-6) side.set(0, 0, 1);
      side.normalize().applyAxisAngle(new THREE.Vector3(0, 1, 0), Math.PI / 6); // a little from the side
      const distance = span * 0.9 + 3, elevation = 35 * Math.PI / 180;
      view.position.copy(centre).addScaledVector(side, distance * Math.cos(elevation));
      view.position.y += distance * Math.sin(elevation);
      controls.target.copy(centre);
      view.updateProjectionMatrix();
      controls.update();
    }
    function cameraView(t) { // look through the video's camera at frame t (it turns with a turning camera)
      if (!cam) return;
      const m = cameraMatrix(t).elements;
      const forward = new THREE.Vector3(m[8], m[9], m[10]), down = new THREE.Vector3(m[4], m[5], m[6]);
      view.position.set(...cam.position);
      view.up.copy(down).negate();
      view.fov = 2 * Math.atan(header.image_size[1] / 2 / cam.fy) * 180 / Math.PI;
      view.updateProjectionMatrix();
      controls.target.copy(view.position).addScaledVector(forward, 4);
      controls.update();
    }
    function setThroughCamera(on) { // while on, the view follows the camera frame by frame; orbiting ends it
      state.throughCamera = !!on && !!cam;
      $('view-camera').classList.toggle('active', state.throughCamera);
      if (state.throughCamera) cameraView(state.frame); else view.up.set(0, 1, 0);
    }

    // ---- drawing a frame
    const state = { frame: 0, clock: timestamps[0], playing: false, speed: 1, drawnRows: [],
      labels: true, trajectories: true, camera: true, grid: true, throughCamera: false };
    const labelBox = $('labels'), labelPool = [];
    const tmp = new Float64Array(17 * 3), mat = new THREE.Matrix4(), quat = new THREE.Quaternion();
    const a = new THREE.Vector3(), b = new THREE.Vector3(), mid = new THREE.Vector3(), scale = new THREE.Vector3();
    const yAxis = new THREE.Vector3(0, 1, 0), dir = new THREE.Vector3(), head = new THREE.Vector3();

    function placePeople(t) {
      const drawn = [];
      for (let k = frameStart[t]; k < frameStart[t + 1]; k++) {
        const i = frameRows[k];
        if (!(rowFlags[i] & ROW_MISSING) && visible[rowTrack[i]]) drawn.push(i);
      }
      drawn.forEach((i, s) => {
        const color = trackColor[rowTrack[i]];
        for (let j = 0; j < 17; j++) joint(i, j, tmp, 3 * j);
        for (let j = 0; j < 17; j++) {
          const r = j === HEAD ? HEAD_RADIUS : JOINT_RADIUS;
          mat.makeScale(r, r, r).setPosition(tmp[3 * j], tmp[3 * j + 1], tmp[3 * j + 2]);
          jointsMesh.setMatrixAt(s * 17 + j, mat);
          jointsMesh.setColorAt(s * 17 + j, color);
        }
        bones.forEach(([parent, child], k) => {
          a.fromArray(tmp, 3 * parent); b.fromArray(tmp, 3 * child);
          dir.subVectors(b, a);
          const length = dir.length();
          quat.setFromUnitVectors(yAxis, length > 1e-9 ? dir.divideScalar(length) : yAxis);
          mat.compose(mid.addVectors(a, b).multiplyScalar(0.5), quat, scale.set(BONE_RADIUS, length, BONE_RADIUS));
          bonesMesh.setMatrixAt(s * bones.length + k, mat);
          bonesMesh.setColorAt(s * bones.length + k, color);
        });
      });
      jointsMesh.count = drawn.length * 17;
      bonesMesh.count = drawn.length * bones.length;
      for (const mesh of [jointsMesh, bonesMesh]) {
        mesh.instanceMatrix.needsUpdate = true;
        mesh.instanceColor.needsUpdate = true;
      }
      state.drawnRows = drawn;
    }

    function placeLabels() {
      const rows = state.labels ? state.drawnRows : [];
      const w = pane.clientWidth, h = pane.clientHeight;
      while (labelPool.length < rows.length) labelBox.appendChild(labelPool[labelPool.length] = document.createElement('div'));
      labelPool.forEach((div, s) => {
        const i = rows[s];
        if (i === undefined) { div.hidden = true; return; }
        joint(i, HEAD, tmp, 0);
        head.set(tmp[0], tmp[1] + HEAD_RADIUS + 0.08, tmp[2]).project(view);
        if (head.z > 1 || head.x < -1.2 || head.x > 1.2 || head.y < -1.2 || head.y > 1.2) { div.hidden = true; return; }
        const p = rowTrack[i];
        div.hidden = false;
        div.textContent = String(header.track_ids[p]) + (rowFlags[i] & ROW_INTERPOLATED ? ' (filled)' : '');
        div.style.background = header.track_colors[p];
        div.style.left = ((head.x + 1) / 2 * w).toFixed(1) + 'px';
        div.style.top = ((1 - head.y) / 2 * h).toFixed(1) + 'px';
      });
    }

    function render() {
      trajectories.visible = state.trajectories;
      trackLines.forEach((line, p) => { line.visible = !!visible[p]; });
      cameraPole.visible = state.camera && !!cam;
      cameraGroup.visible = cameraPole.visible && !state.throughCamera; // not across the view from inside it
      grid.visible = state.grid;
      renderer.render(scene, view);
      placeLabels();
    }

    const slider = $('slider'), clock = $('clock'), trackItems = [];
    let presentBefore = new Set();
    function drawFrame(t) {
      state.frame = t;
      if (state.throughCamera) cameraView(t);
      placePeople(t);
      if (cam) cameraGroup.matrix.copy(cameraMatrix(t));
      cameraGroup.matrixWorldNeedsUpdate = true;
      render();
      slider.value = String(t);
      const people = frameStart[t + 1] - frameStart[t];
      clock.textContent = 't ' + timestamps[t].toFixed(3) + ' s · frame ' + t + ' / ' + (T - 1) + ' · ' + people + (people === 1 ? ' person' : ' people');
      const present = new Set();
      for (let k = frameStart[t]; k < frameStart[t + 1]; k++) present.add(rowTrack[frameRows[k]]);
      for (const p of presentBefore) if (!present.has(p)) trackItems[p].classList.add('absent');
      for (const p of present) if (!presentBefore.has(p)) trackItems[p].classList.remove('absent');
      presentBefore = present;
    }

    // ---- the panel
    const list = $('tracks');
    for (let p = 0; p < P; p++) {
      const li = document.createElement('li'), box = document.createElement('input');
      li.className = 'absent';
      box.type = 'checkbox'; box.checked = true; box.dataset.track = String(header.track_ids[p]);
      box.addEventListener('change', () => setTrackVisible(header.track_ids[p], box.checked));
      const swatch = document.createElement('span');
      swatch.className = 'swatch'; swatch.style.background = header.track_colors[p];
      const name = document.createElement('span');
      name.textContent = 'id ' + header.track_ids[p];
      const frames = document.createElement('span');
      frames.className = 'frames';
      frames.textContent = header.track_lengths[p] + ' f';
      frames.title = 'frames ' + frameIndex[trackStart[p]] + '–' + frameIndex[Math.max(trackStart[p], trackStart[p + 1] - 1)];
      const label = document.createElement('label');
      label.style.display = 'contents';
      label.append(box, swatch, name);
      li.append(label, frames);
      list.appendChild(li);
      trackItems.push(li);
    }
    const duration = timestamps[T - 1] - timestamps[0];
    $('summary').textContent = P + (P === 1 ? ' track, ' : ' tracks, ') + T + ' frames, ' + duration.toFixed(1) + ' s at ' + header.fps.toFixed(2) + ' fps' +
      (cam ? (cam.static ? ', static camera' : ', turning camera') : ', no camera') + (header.video ? ', video: ' + header.video.name : '');

    function setTrackVisible(id, on) {
      const p = trackOfId.get(Number(id));
      if (p === undefined) throw new RangeError('no track with id ' + id);
      visible[p] = on ? 1 : 0;
      list.querySelector('input[data-track="' + header.track_ids[p] + '"]').checked = !!on;
      drawFrame(state.frame);
    }
    function setAllTracksVisible(on) {
      visible.fill(on ? 1 : 0);
      for (const box of list.querySelectorAll('input')) box.checked = !!on;
      drawFrame(state.frame);
    }
    $('tracks-all').addEventListener('click', () => setAllTracksVisible(true));
    $('tracks-none').addEventListener('click', () => setAllTracksVisible(false));
    const OPTIONS = { trajectories: 'show-trajectories', labels: 'show-labels', camera: 'show-camera', grid: 'show-grid' };
    function setOption(name, on) {
      if (!(name in OPTIONS)) throw new RangeError('no option ' + name + ' (' + Object.keys(OPTIONS).join(', ') + ')');
      state[name] = !!on;
      $(OPTIONS[name]).checked = !!on;
      render();
    }
    for (const [name, id] of Object.entries(OPTIONS)) $(id).addEventListener('change', (e) => setOption(name, e.target.checked));
    $('view-reset').addEventListener('click', () => { setThroughCamera(false); resetView(); render(); });
    $('view-camera').addEventListener('click', () => { setThroughCamera(!state.throughCamera); render(); });
    $('view-camera').disabled = !cam;

    // ---- time: the video's clock when a video plays, otherwise the page's own
    const video = $('video');
    let videoOn = false;
    if (window.WILDPOSE_VIDEO_SRC) {
      videoOn = true;
      $('video-pane').hidden = false;
      video.addEventListener('error', () => {
        videoOn = false;
        $('video-pane').hidden = true;
        $('summary').textContent += ' (the video could not be played here: ' + (video.error ? video.error.message || 'code ' + video.error.code : 'unknown error') + ')';
        state.playing = false;
        updatePlayButton();
        resize();
      });
      video.addEventListener('seeked', () => followVideo(video.currentTime));
      video.addEventListener('pause', () => { state.playing = false; updatePlayButton(); followVideo(video.currentTime); });
      video.addEventListener('play', () => { state.playing = true; updatePlayButton(); });
      video.addEventListener('ended', () => { state.playing = false; updatePlayButton(); });
      if (video.requestVideoFrameCallback) {
        // while playing, the presented frame's own timestamp; once paused or seeked, currentTime (the handlers above)
        const onVideoFrame = (now, meta) => {
          if (!video.paused && !video.seeking) followVideo(meta.mediaTime);
          video.requestVideoFrameCallback(onVideoFrame);
        };
        video.requestVideoFrameCallback(onVideoFrame);
      }
      video.src = window.WILDPOSE_VIDEO_SRC;
    }
    function followVideo(seconds) {
      if (!videoOn) return;
      state.clock = seconds;
      const t = frameAtTime(seconds);
      if (t !== state.frame) drawFrame(t);
    }

    function setFrame(t) {
      t = Math.trunc(Number(t));
      if (!(t >= 0 && t < T)) throw new RangeError('frame ' + t + ' is not in 0..' + (T - 1));
      state.clock = timestamps[t];
      if (videoOn) video.currentTime = timestamps[t];
      drawFrame(t);
    }
    function play() {
      if (state.frame >= T - 1) setFrame(0);
      state.playing = true;
      if (videoOn) video.play().catch(() => { state.playing = false; updatePlayButton(); });
      updatePlayButton();
    }
    function pause() {
      state.playing = false;
      if (videoOn) video.pause();
      updatePlayButton();
    }
    function setSpeed(speed) {
      speed = Number(speed);
      if (!(speed > 0 && speed <= 16)) throw new RangeError('speed ' + speed + ' is not in (0, 16]');
      state.speed = speed;
      if (videoOn) video.playbackRate = speed;
      const select = $('speed');
      if (![...select.options].some((o) => Number(o.value) === speed)) select.add(new Option(speed + '×', String(speed)));
      select.value = String(speed);
    }
    function updatePlayButton() { $('play').innerHTML = state.playing ? '&#10074;&#10074;' : '&#9654;'; }

    let lastTick = null;
    function tick(now) {
      if (state.playing && !videoOn && lastTick !== null) {
        state.clock += (now - lastTick) / 1000 * state.speed;
        if (state.clock > timestamps[T - 1]) { // the end: stop there
          state.clock = timestamps[T - 1];
          state.playing = false;
          updatePlayButton();
        }
        const t = frameAtTime(state.clock);
        if (t !== state.frame) drawFrame(t);
      }
      lastTick = now;
      requestAnimationFrame(tick);
    }

    $('play').addEventListener('click', () => (state.playing ? pause() : play()));
    $('prev').addEventListener('click', () => { pause(); setFrame(Math.max(0, state.frame - 1)); });
    $('next').addEventListener('click', () => { pause(); setFrame(Math.min(T - 1, state.frame + 1)); });
    $('speed').addEventListener('change', (e) => setSpeed(e.target.value));
    slider.max = String(T - 1);
    slider.addEventListener('input', () => setFrame(Number(slider.value)));
    document.addEventListener('keydown', (e) => {
      if (e.target instanceof HTMLSelectElement) return;
      const by = e.shiftKey ? 10 : 1;
      if (e.key === ' ') { e.preventDefault(); state.playing ? pause() : play(); }
      else if (e.key === 'ArrowLeft') { e.preventDefault(); pause(); setFrame(Math.max(0, state.frame - by)); }
      else if (e.key === 'ArrowRight') { e.preventDefault(); pause(); setFrame(Math.min(T - 1, state.frame + by)); }
      else if (e.key === 'Home') { e.preventDefault(); pause(); setFrame(0); }
      else if (e.key === 'End') { e.preventDefault(); pause(); setFrame(T - 1); }
    });

    function resize() {
      const w = Math.max(1, pane.clientWidth), h = Math.max(1, pane.clientHeight);
      renderer.setSize(w, h, false);
      view.aspect = w / h;
      view.updateProjectionMatrix();
      render();
    }
    new ResizeObserver(resize).observe(pane);
    controls.addEventListener('change', render);
    controls.addEventListener('start', () => { if (state.throughCamera) setThroughCamera(false); });

    resetView();
    resize();
    drawFrame(0);
    requestAnimationFrame(tick);

    // ---- the API
    const jointsOfRow = (i) => {
      joint(i, 0, tmp, 0);
      const out = [];
      for (let j = 0; j < 17; j++) { joint(i, j, tmp, 0); out.push([tmp[0], tmp[1], tmp[2]]); }
      return out;
    };
    const checkFrame = (t) => {
      t = t === undefined ? state.frame : Math.trunc(Number(t));
      if (!(t >= 0 && t < T)) throw new RangeError('frame ' + t + ' is not in 0..' + (T - 1));
      return t;
    };
    Object.assign(api, {
      numFrames: T, numTracks: P, numRows: N, fps: header.fps, stepMetres: step, jointNames: header.joint_names,
      bones, hasCamera: !!cam,
      timestamps: () => Array.from(timestamps),
      setFrame, frame: () => state.frame, time: () => timestamps[state.frame], frameAtTime,
      play, pause, isPlaying: () => state.playing, setSpeed, speed: () => state.speed,
      videoActive: () => videoOn, video: () => (videoOn ? video : null),
      tracks: () => header.track_ids.map((id, p) => ({ id, color: header.track_colors[p], rows: header.track_lengths[p],
        firstFrame: frameIndex[trackStart[p]], lastFrame: frameIndex[trackStart[p + 1] - 1], visible: !!visible[p] })),
      setTrackVisible, setAllTracksVisible, setOption,
      options: () => ({ trajectories: state.trajectories, labels: state.labels, camera: state.camera, grid: state.grid }),
      // the people with a pose at frame t (default: the current frame), shown or not
      people: (t) => {
        t = checkFrame(t);
        const out = [];
        for (let k = frameStart[t]; k < frameStart[t + 1]; k++) {
          const i = frameRows[k];
          if (!(rowFlags[i] & ROW_MISSING)) out.push({ id: header.track_ids[rowTrack[i]], interpolated: !!(rowFlags[i] & ROW_INTERPOLATED) });
        }
        return out;
      },
      // track `id`'s 17 joints (metres, world) at frame t as the page decodes them; null where it has no pose
      jointPositions: (id, t) => {
        const p = trackOfId.get(Number(id));
        if (p === undefined) throw new RangeError('no track with id ' + id);
        const i = rowAt(p, checkFrame(t));
        return i < 0 || rowFlags[i] & ROW_MISSING ? null : jointsOfRow(i);
      },
      // what the scene holds now: each drawn person's joints read back from the instanced mesh, their labels,
      // the camera's frustum
      drawn: () => {
        const people = state.drawnRows.map((i, s) => {
          const joints = [];
          for (let j = 0; j < 17; j++) {
            jointsMesh.getMatrixAt(s * 17 + j, mat);
            const e = mat.elements;
            joints.push([e[12], e[13], e[14]]);
          }
          const c = new THREE.Color();
          jointsMesh.getColorAt(s * 17, c);
          return { id: header.track_ids[rowTrack[i]], color: '#' + c.getHexString(), joints };
        });
        const labels = labelPool.filter((d) => !d.hidden).map((d) => ({ text: d.textContent,
          x: parseFloat(d.style.left), y: parseFloat(d.style.top) }));
        let camera = null;
        if (cam) {
          const e = cameraGroup.matrix.elements;
          camera = { position: [e[12], e[13], e[14]], direction: [e[8], e[9], e[10]], up: [-e[4], -e[5], -e[6]],
            visible: cameraGroup.visible };
        }
        return { frame: state.frame, people, labels, camera,
          trajectories: trackLines.filter((l) => l.visible && trajectories.visible).length };
      },
      // where a world point lands on the canvas, in CSS pixels from its top-left corner
      project: (x, y, z) => {
        const v = new THREE.Vector3(x, y, z).project(view);
        return [(v.x + 1) / 2 * pane.clientWidth, (1 - v.y) / 2 * pane.clientHeight, v.z];
      },
      resetView: () => { setThroughCamera(false); resetView(); render(); },
      // look through the video's camera (following it frame by frame) until the user orbits, pans or zooms
      cameraView: (on = true) => { setThroughCamera(on); render(); }, throughCamera: () => state.throughCamera,
      render,
      three: { THREE, scene, camera: view, renderer, controls },
    });
    api.loaded = true;
    resolveReady(api);
  }

  main().catch((err) => {
    console.error(err);
    showMessage('wildpose viewer: ' + err.message);
    api.error = String(err.message || err);
    rejectReady(err);
  });
})();
