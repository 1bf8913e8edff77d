// A Generative UI bundle for the e2e tests: aegra.json's `ui` points here.
import { useState } from "react";
import "./weather.css";

function WeatherCard(props: { city: string; temperature: number }) {
  const [unit] = useState<"C" | "F">("C");
  return (
    <div className="weather-card" data-testid="weather-card">
      {props.city}: {props.temperature}°{unit} (aegra-ui-marker)
    </div>
  );
}

export default { weather: WeatherCard };
