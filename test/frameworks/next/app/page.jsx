import intro from '../scripts/intro.script.json?flux'

const assets = intro.visual_track.flatMap(scene => Object.values(scene.assets ?? {}))

export default function Page() {
  return (
    <main>
      <h1>{intro.title}</h1>
      {assets.map(a => (
        // eslint-disable-next-line @next/next/no-img-element
        <img key={a.id} className="flux" src={a.url} alt={a.id} width={a.width} height={a.height} />
      ))}
    </main>
  )
}
