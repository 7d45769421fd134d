// wildpose live view: world-axes skeletons from the websocket /ws, one message per processed frame (schema.json).
(function () {
  "use strict";
  const BONES = [[0, 1], [1, 2], [2, 3], [0, 4], [4, 5], [5, 6], [0, 7], [7, 8], [8, 9], [9, 10], [8, 11], [11, 12],
    [12, 13], [8, 14], [14, 15], [15, 16]];
  const status = document.getElementById("status");
  const renderer = new THREE.WebGLRenderer({ antialias: true });
  renderer.setPixelRatio(window.devicePixelRatio);
  document.body.appendChild(renderer.domElement);
  const scene = new THREE.Scene();
  scene.background = new THREE.Color(0x181a1e);
  const camera = new THREE.PerspectiveCamera(45, 1, 0.05, 200);
  camera.position.set(4, 3, 2);
  const controls = new THREE.OrbitControls(camera, renderer.domElement);
  controls.target.set(0, 0.9, -4);
  controls.update();
  const grid = new THREE.GridHelper(20, 20, 0x555a66, 0x3a3e46);
  grid.position.set(0, 0, -5);
  scene.add(grid);
  const maxPeople = 64;
  const positions = new Float32Array(maxPeople * BONES.length * 2 * 3);
  const colors = new Float32Array(positions.length);
  const geometry = new THREE.BufferGeometry();
  geometry.setAttribute("position", new THREE.BufferAttribute(positions, 3));
  geometry.setAttribute("color", new THREE.BufferAttribute(colors, 3));
  scene.add(new THREE.LineSegments(geometry, new THREE.LineBasicMaterial({ vertexColors: true })));
  const colour = (id) => new THREE.Color().setHSL(((id * 0.618034) % 1 + 1) % 1, 0.75, 0.6);

  function resize() {
    renderer.setSize(window.innerWidth, window.innerHeight);
    camera.aspect = window.innerWidth / window.innerHeight;
    camera.updateProjectionMatrix();
  }
  window.addEventListener("resize", resize);
  resize();

  // what the page has shown, for a test's (or a user's console's) look: frames drawn, the last one, its vertices
  const state = { show, frames: 0, frame: null, vertices: 0 };

  function show(frame) {
    let v = 0;
    for (const person of frame.people.slice(0, maxPeople)) {
      const joints = person.joints_world;
      if (!joints) continue;
      const c = colour(person.id);
      for (const [a, b] of BONES) {
        for (const j of [a, b]) {
          positions.set(joints[j], v * 3);
          colors.set([c.r, c.g, c.b], v * 3);
          v += 1;
        }
      }
    }
    geometry.setDrawRange(0, v);
    state.frames += 1;
    state.frame = frame.frame;
    state.vertices = v;
    geometry.attributes.position.needsUpdate = true;
    geometry.attributes.color.needsUpdate = true;
    geometry.computeBoundingSphere();
    const d = frame.dropped;
    status.textContent = `frame ${frame.frame}  t ${frame.time.toFixed(2)} s  people ${frame.people.length}  ` +
      `latency ${(frame.latency_s * 1000).toFixed(0)} ms  dropped ${d.queue + d.late}` +
      (frame.world ? `  world: ${frame.world.settled ? "settled" : "settling"} (${frame.world.fits} fits)` : "");
  }

  function connect() {
    const socket = new WebSocket(`ws://${location.host}/ws`);
    socket.onmessage = (event) => show(JSON.parse(event.data));
    socket.onclose = () => { status.textContent = "disconnected; retrying..."; setTimeout(connect, 1000); };
  }
  connect();
  (function loop() { requestAnimationFrame(loop); renderer.render(scene, camera); })();
  window.wildposeLive = state;
})();
