import { mount } from 'svelte';
import './app.css';
import App from './App.svelte';
import { moment } from './lib/perf';
import { platformOf } from './lib/platform';

moment('script');
// Before the first layout: the font stacks depend on it (app.css).
document.documentElement.dataset.platform = platformOf(navigator.userAgent);

const target = document.getElementById('app');
if (!target) throw new Error('index.html has no #app element');

export default mount(App, { target });
